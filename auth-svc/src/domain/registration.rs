//! Request bodies of `/register` and `/login`, and what they parse into.

use common::text::{Lines, check_controls};
use common::web::FieldErrors;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Email, Password, Username};

/// `POST /register` body. Fields are optional here so that a missing one is
/// reported per field like any other invalid value.
#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3-32 characters of `[A-Za-z0-9_.-]`.
    #[schema(value_type = String, required = true, example = "alice", min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: Option<String>,
    /// A valid email address (its domain has a dot).
    #[schema(value_type = String, required = true, format = Email, example = "alice@example.com", max_length = 254)]
    pub email: Option<String>,
    /// 8-128 characters, no control characters.
    #[schema(value_type = String, required = true, example = "correct horse battery staple", min_length = 8, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub password: Option<String>,
}

/// A registration whose every field is valid.
#[derive(Debug)]
pub struct NewUser {
    /// The chosen username.
    pub username: Username,
    /// The email address.
    pub email: Email,
    /// The password, to be hashed.
    pub password: Password,
}

fn required(errors: &mut FieldErrors, field: &str, value: Option<String>) -> Option<String> {
    match value {
        Some(v) => Some(v),
        None => {
            errors.add(field, "is required");
            None
        }
    }
}

impl NewUser {
    /// Validates every field, reporting all problems at once.
    pub fn parse(req: RegisterRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let username = required(&mut errors, "username", req.username)
            .and_then(|u| errors.check("username", Username::parse(&u)));
        let email = required(&mut errors, "email", req.email)
            .and_then(|e| errors.check("email", Email::parse(&e)));
        let password = required(&mut errors, "password", req.password)
            .and_then(|p| errors.check("password", Password::parse(p)));
        match (username, email, password) {
            (Some(username), Some(email), Some(password)) => Ok(Self {
                username,
                email,
                password,
            }),
            _ => Err(errors),
        }
    }
}

/// `POST /login` body.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username or the email address: 1-254 characters, no spaces or
    /// control characters.
    #[schema(value_type = String, required = true, example = "alice", min_length = 1, max_length = 254, pattern = r"^[^\s\u0000-\u001F\u007F-\u009F]*$")]
    pub username: Option<String>,
    /// The password: 1-128 characters, no control characters.
    #[schema(value_type = String, required = true, example = "correct horse battery staple", min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub password: Option<String>,
}

/// A login attempt with both fields present. Their format is not checked
/// beyond length: a malformed name simply matches nobody.
#[derive(Debug)]
pub struct Credentials {
    /// Username or email.
    pub login: String,
    /// The password.
    pub password: Password,
}

impl Credentials {
    /// Requires both fields, non-empty and of sane length.
    pub fn parse(req: LoginRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let login = match req.username {
            Some(u) if u.is_empty() => {
                errors.add("username", "must not be empty");
                None
            }
            Some(u) if u.chars().count() > 254 => {
                errors.add("username", "must be at most 254 characters long");
                None
            }
            // Neither a username nor an email has spaces; one that does is
            // refused rather than trimmed into a different login.
            Some(u) if u.chars().any(char::is_whitespace) => {
                errors.add("username", "must not contain spaces");
                None
            }
            Some(u) => errors
                .check("username", check_controls(&u, Lines::Single))
                .map(|()| u),
            None => {
                errors.add("username", "is required");
                None
            }
        };
        let password = match req.password {
            Some(p) if p.is_empty() => {
                errors.add("password", "must not be empty");
                None
            }
            // Any length up to the limit: an old password shorter than
            // today's rule must still be checked, not refused as invalid.
            Some(p) if p.chars().count() <= 128 => errors
                .check("password", check_controls(&p, Lines::Single))
                .map(|()| Password::candidate(p)),
            Some(_) => {
                errors.add("password", "must be at most 128 characters long");
                None
            }
            None => {
                errors.add("password", "is required");
                None
            }
        };
        match (login, password) {
            (Some(login), Some(password)) => Ok(Self { login, password }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(username: Option<&str>, email: Option<&str>, password: Option<&str>) -> RegisterRequest {
        RegisterRequest {
            username: username.map(Into::into),
            email: email.map(Into::into),
            password: password.map(Into::into),
        }
    }

    #[test]
    fn a_valid_registration_parses() {
        let user = NewUser::parse(req(Some("alice"), Some("a@example.com"), Some("password1")))
            .expect("valid");
        assert_eq!(user.username.as_str(), "alice");
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = NewUser::parse(req(Some("a"), None, Some("short"))).expect_err("invalid");
        assert!(errors.get("username").is_some());
        assert_eq!(errors.get("email"), Some(&["is required".to_string()][..]));
        assert!(errors.get("password").is_some());
    }

    #[test]
    fn login_needs_both_fields() {
        let errors = Credentials::parse(LoginRequest {
            username: Some(" ".into()),
            password: None,
        })
        .expect_err("invalid");
        assert!(errors.get("username").is_some() && errors.get("password").is_some());
        assert!(
            Credentials::parse(LoginRequest {
                username: Some("bob".into()),
                password: Some("x".into())
            })
            .is_ok()
        );
    }
}
