//! The saga's state machine: PENDING -> CONFIRMED | REJECTED | CANCELLED.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Waiting for catalog-svc to reserve the stock.
    Pending,
    /// Stock reserved. Final.
    Confirmed,
    /// Stock could not be reserved. Final.
    Rejected,
    /// Cancelled by the user or by the deadline; stock is released. Final.
    Cancelled,
}

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `stock.reserved` arrived.
    Confirm,
    /// `stock.rejected` arrived.
    Reject,
    /// The user cancelled, or the deadline passed.
    Cancel,
}

/// A transition the current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order in {from:?} cannot {transition:?}")]
pub struct InvalidTransition {
    /// The status it is in.
    pub from: OrderStatus,
    /// What was attempted.
    pub transition: Transition,
}

impl OrderStatus {
    /// The status after `transition`; only PENDING orders move.
    pub fn apply(self, transition: Transition) -> Result<Self, InvalidTransition> {
        match (self, transition) {
            (OrderStatus::Pending, Transition::Confirm) => Ok(OrderStatus::Confirmed),
            (OrderStatus::Pending, Transition::Reject) => Ok(OrderStatus::Rejected),
            (OrderStatus::Pending, Transition::Cancel) => Ok(OrderStatus::Cancelled),
            (from, transition) => Err(InvalidTransition { from, transition }),
        }
    }

    /// True once nothing more can happen to it.
    pub fn is_final(self) -> bool {
        self != OrderStatus::Pending
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Every status, for metrics.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Rejected,
        OrderStatus::Cancelled,
    ];
}

impl std::str::FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_orders_move() {
        use OrderStatus::*;
        use Transition::*;
        assert_eq!(Pending.apply(Confirm), Ok(Confirmed));
        assert_eq!(Pending.apply(Reject), Ok(Rejected));
        assert_eq!(Pending.apply(Cancel), Ok(Cancelled));
        for from in [Confirmed, Rejected, Cancelled] {
            for t in [Confirm, Reject, Cancel] {
                assert!(from.apply(t).is_err(), "{from:?} {t:?}");
            }
            assert!(from.is_final());
        }
        assert!(!Pending.is_final());
        for st in OrderStatus::ALL {
            assert_eq!(st.as_str().parse::<OrderStatus>(), Ok(st));
        }
    }
}
