//! The notifications service's typed client: its JSON-RPC methods, called over the
//! caller's resilient HTTP client.

use super::api::{
    LIST_NOTIFICATIONS, LIST_STOCK_ALERTS, Notification, NotificationQuery, StockAlert,
};
use crate::platform::client::{ClientError, HttpClient};
use crate::platform::jsonrpc::RpcClient;

#[derive(Clone, Debug)]
pub struct NotificationsClient {
    rpc: RpcClient,
}

impl NotificationsClient {
    pub fn new(http: HttpClient) -> Self {
        Self {
            rpc: RpcClient::new(http),
        }
    }

    pub fn http(&self) -> &HttpClient {
        self.rpc.http()
    }

    /// The notifications recorded: all, or those of one order or customer.
    pub async fn list(&self, q: &NotificationQuery) -> Result<Vec<Notification>, ClientError> {
        let all = q.order_id.is_none() && q.customer_id.is_none();
        self.rpc.read(LIST_NOTIFICATIONS, (!all).then_some(q)).await
    }

    /// The alerts the stock team was sent, oldest first.
    pub async fn stock_alerts(&self) -> Result<Vec<StockAlert>, ClientError> {
        self.rpc.read::<(), _>(LIST_STOCK_ALERTS, None).await
    }
}
