//! Types that are valid by construction: once a handler holds a `Username`,
//! nothing downstream needs to check it again.

mod email;
mod password;
mod registration;
mod username;

pub use email::Email;
pub use password::Password;
pub use registration::{Credentials, LoginRequest, NewUser, RegisterRequest};
pub use username::Username;
