//! API composition: `GET /api/orders/{id}/details` asks orders, inventory, payments and
//! notifications at once and merges their answers into one [`OrderDetails`].
//!
//! Each part has its own deadline inside the request's: a part that is slow or down is left
//! out and named in `missing`, so a caller gets what is known within the deadline rather
//! than waiting on the slowest service. The order itself is the one part that cannot be
//! missing: without it there is nothing to compose (an unknown order is a 404, orders
//! failing is the gateway's usual 502/503/504). `--disable composition-deadlines` drops
//! the parts' deadlines: the answer then waits for the slowest part (within its client's
//! own timeouts and retries), which is what the pattern's experiment shows.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::api::OrderDetails;
use crate::inventory::InventoryClient;
use crate::notifications::{NotificationQuery, NotificationsClient};
use crate::orders::OrdersClient;
use crate::payments::PaymentsClient;
use crate::platform::client::ClientError;
use crate::platform::http::ApiError;
use crate::topology::Service;

/// How long the parts of an order's details may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// The whole request's: nothing is awaited past it.
    pub request: Duration,
    /// Each part's, inside the request's.
    pub part: Duration,
    /// `false` (`--disable composition-deadlines`): every part is awaited to its end.
    pub enabled: bool,
}

/// The typed clients of the services an order's details come from.
#[derive(Debug, Clone)]
pub struct Composer {
    pub orders: OrdersClient,
    pub inventory: InventoryClient,
    pub payments: PaymentsClient,
    pub notifications: NotificationsClient,
    pub deadlines: Deadlines,
}

/// What became of one part.
enum Part<T> {
    Got(T),
    /// The service answered that it holds nothing for this order.
    None,
    /// The service failed, or did not answer within the part's deadline.
    Missing,
}

impl<T> Part<T> {
    /// The part's value, if any; a missing part is named in `missing`.
    fn take(self, service: Service, missing: &mut Vec<Service>) -> Option<T> {
        match self {
            Part::Got(v) => Some(v),
            Part::None => None,
            Part::Missing => {
                missing.push(service);
                None
            }
        }
    }
}

impl Composer {
    /// The order's details: every part that answered in time, the others named in `missing`.
    pub async fn details(&self, order_id: &str) -> Result<OrderDetails, ApiError> {
        let started = Instant::now();
        let request_deadline = started + self.deadlines.request;
        let part = |service: Service| self.part(service, request_deadline);
        let id = order_id.to_string();
        let (order, reservation, payments, notifications) = tokio::join!(
            self.required(request_deadline, self.orders.order(order_id)),
            part(Service::Inventory).run(async {
                match self.inventory.reservation(&id).await {
                    Err(e) if e.refused_status() == Some(404) => Ok(None),
                    other => other.map(Some),
                }
            }),
            part(Service::Payments).run(async { self.payments.of_order(&id).await.map(Some) }),
            part(Service::Notifications).run(async {
                let q = NotificationQuery {
                    order_id: Some(id.clone()),
                    customer_id: None,
                };
                self.notifications.list(&q).await.map(Some)
            }),
        );
        let order = order?;
        let mut missing = Vec::new();
        let details = OrderDetails {
            order,
            reservation: reservation.take(Service::Inventory, &mut missing),
            payments: payments
                .take(Service::Payments, &mut missing)
                .unwrap_or_default(),
            notifications: notifications
                .take(Service::Notifications, &mut missing)
                .unwrap_or_default(),
            missing,
        };
        record(&details, started.elapsed());
        Ok(details)
    }

    /// The order: awaited to the request's deadline (or to its end without deadlines).
    async fn required<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ApiError> {
        if !self.deadlines.enabled {
            return Ok(call.await?);
        }
        match tokio::time::timeout_at(deadline, call).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "orders did not answer within the details' {:?} deadline",
                    self.deadlines.request
                ),
            )),
        }
    }

    fn part(&self, service: Service, request_deadline: Instant) -> PartCall {
        let deadline = (Instant::now() + self.deadlines.part).min(request_deadline);
        PartCall {
            service,
            deadline: self.deadlines.enabled.then_some(deadline),
        }
    }
}

/// One optional part's call and its deadline.
struct PartCall {
    service: Service,
    deadline: Option<Instant>,
}

impl PartCall {
    /// `Ok(Some)`: the part; `Ok(None)`: the service holds nothing for the order.
    async fn run<T>(self, call: impl Future<Output = Result<Option<T>, ClientError>>) -> Part<T> {
        let answer = match self.deadline {
            Some(at) => match tokio::time::timeout_at(at, call).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::warn!(part = %self.service, "part of the order's details left out: past its deadline");
                    return Part::Missing;
                }
            },
            None => call.await,
        };
        match answer {
            Ok(Some(v)) => Part::Got(v),
            Ok(None) => Part::None,
            Err(e) => {
                tracing::warn!(part = %self.service, error = %e, "part of the order's details left out: it failed");
                Part::Missing
            }
        }
    }
}

/// The composition on the request's span: which parts are missing, so partial answers can
/// be found in the collector (`composition.partial = true`).
fn record(details: &OrderDetails, took: Duration) {
    let span = tracing::Span::current();
    let missing: Vec<&str> = details.missing.iter().map(|s| s.name()).collect();
    span.set_attribute("composition.partial", !missing.is_empty());
    if !missing.is_empty() {
        span.set_attribute("composition.missing", missing.join(","));
    }
    tracing::debug!(took_ms = took.as_millis() as u64, missing = ?missing, "order details composed");
}
