//! The order's state machine: the saga takes PENDING to CONFIRMED, REJECTED
//! or CANCELLED; then a CONFIRMED order is SHIPPED and DELIVERED, or
//! CANCELLED before it ships. REJECTED, CANCELLED and DELIVERED are final.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Waiting for catalog-svc to reserve the stock.
    Pending,
    /// Stock reserved; may still be cancelled, or shipped.
    Confirmed,
    /// Stock could not be reserved. Final.
    Rejected,
    /// Cancelled by the user, an admin or the deadline; stock is released. Final.
    Cancelled,
    /// On its way; its units are gone for good.
    Shipped,
    /// Arrived. Final.
    Delivered,
}

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `stock.reserved` arrived.
    Confirm,
    /// `stock.rejected` arrived.
    Reject,
    /// The user or an admin cancelled, or the deadline passed.
    Cancel,
    /// An admin shipped it.
    Ship,
    /// An admin recorded its delivery.
    Deliver,
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
    /// The status after `transition`.
    pub fn apply(self, transition: Transition) -> Result<Self, InvalidTransition> {
        use OrderStatus::*;
        match (self, transition) {
            (Pending, Transition::Confirm) => Ok(Confirmed),
            (Pending, Transition::Reject) => Ok(Rejected),
            (Pending | Confirmed, Transition::Cancel) => Ok(Cancelled),
            (Confirmed, Transition::Ship) => Ok(Shipped),
            (Shipped, Transition::Deliver) => Ok(Delivered),
            (from, transition) => Err(InvalidTransition { from, transition }),
        }
    }

    /// True once the saga has decided (anything but PENDING): what a
    /// `Prefer: wait` request waits for.
    pub fn is_final(self) -> bool {
        self != OrderStatus::Pending
    }

    /// Whether the address may still change (PENDING or CONFIRMED).
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Confirmed)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
        }
    }

    /// Every status, for metrics.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Rejected,
        OrderStatus::Cancelled,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
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
    fn every_transition_and_only_those() {
        use OrderStatus::*;
        use Transition::*;
        let allowed = [
            (Pending, Confirm, Confirmed),
            (Pending, Reject, Rejected),
            (Pending, Cancel, Cancelled),
            (Confirmed, Cancel, Cancelled),
            (Confirmed, Ship, Shipped),
            (Shipped, Deliver, Delivered),
        ];
        for from in OrderStatus::ALL {
            for t in [Confirm, Reject, Cancel, Ship, Deliver] {
                let expected = allowed
                    .iter()
                    .find(|(f, tr, _)| *f == from && *tr == t)
                    .map(|(_, _, to)| *to);
                assert_eq!(from.apply(t).ok(), expected, "{from:?} {t:?}");
            }
        }
        assert!(!Pending.is_final());
        assert!(Confirmed.is_open() && Pending.is_open() && !Shipped.is_open());
        for st in OrderStatus::ALL {
            assert_eq!(st.as_str().parse::<OrderStatus>(), Ok(st));
        }
    }
}
