//! Consumer contract tests: each drives the consumer's own typed client (the one the service
//! really calls its provider with) against Pact's mock server, or feeds a Pact message to
//! the consumer's own event handler, and on success writes the V4 pact to
//! `contracts/pacts/`. Provider states are the providers' own constants, so a state a
//! provider does not know cannot be written here.

use gauntlet_contracts::PACTS_DIR;
use gauntlet_demo_system::gateway::GatewayConfig;
use gauntlet_demo_system::inventory::provider_states as inventory_states;
use gauntlet_demo_system::inventory::{CatalogClient, InventoryClient, ReserveRequest};
use gauntlet_demo_system::legacy::LegacyClient;
use gauntlet_demo_system::mobile_bff::MobileBffClient;
use gauntlet_demo_system::notifications::api::LIST_NOTIFICATIONS;
use gauntlet_demo_system::notifications::provider_states as notifications_states;
use gauntlet_demo_system::notifications::{NotificationQuery, Notifications, NotificationsClient};
use gauntlet_demo_system::order_history::provider_states as history_states;
use gauntlet_demo_system::order_history::{OrderHistory, OrderHistoryClient};
use gauntlet_demo_system::orders::provider_states as orders_states;
use gauntlet_demo_system::orders::{Item, OrderStatus, OrdersClient, PlaceOrder};
use gauntlet_demo_system::payments::provider_states as payments_states;
use gauntlet_demo_system::payments::{AuthorizationStatus, AuthorizeRequest, PaymentsClient};
use gauntlet_demo_system::platform::client::{ClientError, HttpClient};
use gauntlet_demo_system::platform::outbox::{Event, FeedConsumer};
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use gauntlet_demo_system::web_bff::{GraphQlMedia, GraphQlRequest, GraphQlResponse, WebBffClient};
use pact_consumer::prelude::*;
use serde_json::json;

const UUID: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
const ORDER_STATUS: &str =
    "^(pending|stock_reserved|payment_authorized|confirmed|compensating|cancelled|rejected)$";

fn pact(consumer: &str, provider: &str) -> PactBuilder {
    let mut p = PactBuilder::new_v4(consumer, provider);
    p.with_output_dir(PACTS_DIR);
    p
}

/// A typed-call client for `provider` at the mock server, with the consumer's resilience.
fn client(provider: &str, server: &dyn ValidatingMockServer, r: &ResilienceConfig) -> HttpClient {
    let url = server.url().to_string();
    HttpClient::at(provider, url.trim_end_matches('/'), r).expect("client")
}

fn gateway() -> ResilienceConfig {
    GatewayConfig::default().resilience
}

fn saga() -> ResilienceConfig {
    ResilienceConfig::saga()
}

/// An order as its consumers read it; `payment_id` and `reason` are left out where the
/// consumer does not need them (absent is `None` to it).
fn order_pattern(id: &str, status: JsonPattern) -> JsonPattern {
    json_pattern!({
        "id": like!(id),
        "customer_id": like!("cust-pact"),
        "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)}),
        "total_cents": like!(8900),
        "status": status
    })
}

fn reached(order_id: &str, status: &str) -> serde_json::Value {
    json!({"order_id": order_id, "customer_id": "cust-pact", "status": status})
}

mod gateway_to_inventory {
    use super::*;

    #[tokio::test]
    async fn the_gateway_lists_products() {
        let mut p = pact("gateway", "inventory");
        p.interaction("a request for the product list", "", |mut i| {
            i.given(inventory_states::IN_STOCK);
            i.request.get().path("/products");
            i.response.ok().json_body(each_like!({
                "sku": term!("^SKU-[A-Z]+$", "SKU-KEYBOARD"),
                "name": like!("Mechanical keyboard"),
                "price_cents": like!(8900),
                "stock": like!(120)
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let inventory = InventoryClient::new(client("inventory", &*server, &gateway()));
        let products = inventory.products().await.expect("products");
        assert_eq!(products.len(), 1);
        assert_eq!(products[0].sku, "SKU-KEYBOARD");
        assert_eq!(products[0].stock, 120);
    }
}

mod gateway_to_orders {
    use super::*;

    #[tokio::test]
    async fn the_gateway_places_an_order() {
        let mut p = pact("gateway", "orders");
        p.interaction("a request to place an order", "", |mut i| {
            i.request
                .post()
                .path("/orders")
                .content_type("application/json")
                .json_body(json_pattern!({
                    "customer_id": like!("cust-pact"),
                    "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
                }));
            i.response.created().json_body(order_pattern(
                "ord-1",
                term!(ORDER_STATUS, "confirmed").into(),
            ));
            i
        });
        let server = p.start_mock_server(None, None);
        let orders = OrdersClient::new(client("orders", &*server, &gateway()));
        let req = PlaceOrder {
            customer_id: "cust-pact".into(),
            items: vec![Item {
                sku: "SKU-KEYBOARD".into(),
                quantity: 1,
            }],
        };
        let placed = orders.place(&req, None).await.expect("placed");
        assert_eq!(placed.status, 201);
        assert_eq!(placed.body.status, OrderStatus::Confirmed);
        assert_eq!(placed.body.payment_id, None, "not in the contract: absent");
    }

    #[tokio::test]
    async fn the_gateway_reads_an_order_and_relays_an_unknown_one() {
        let mut p = pact("gateway", "orders");
        p.interaction("a request for an order", "", |mut i| {
            i.given_with_params(
                orders_states::ORDER_REACHED,
                &reached("ord-pact-1", "confirmed"),
            );
            i.request.get().path("/orders/ord-pact-1");
            i.response
                .ok()
                .json_body(order_pattern("ord-pact-1", like!("confirmed").into()));
            i
        });
        p.interaction("a request for an order that does not exist", "", |mut i| {
            i.request.get().path("/orders/ord-unknown");
            i.response
                .not_found()
                .json_body(json_pattern!({"error": like!("no order ord-unknown")}));
            i
        });
        let server = p.start_mock_server(None, None);
        let orders = OrdersClient::new(client("orders", &*server, &gateway()));
        let order = orders.order("ord-pact-1").await.expect("order");
        assert_eq!(order.id, "ord-pact-1");
        let err = orders.order("ord-unknown").await.expect_err("unknown");
        assert_eq!(err.refused_status(), Some(404), "{err}");
    }
}

mod gateway_to_order_history {
    use super::*;

    #[tokio::test]
    async fn the_gateway_lists_a_customers_orders() {
        let mut p = pact("gateway", "order-history");
        p.interaction("a request for a customer's orders", "", |mut i| {
            i.given_with_params(
                history_states::CUSTOMER_HAS_ORDER,
                &json!({"customer_id": "cust-pact", "order_id": "ord-pact-2"}),
            );
            i.request.get().path("/customers/cust-pact/orders");
            i.response.ok().json_body(each_like!({
                "order_id": like!("ord-pact-2"),
                "customer_id": like!("cust-pact"),
                "status": term!(ORDER_STATUS, "confirmed"),
                "total_cents": like!(8900),
                "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let history = OrderHistoryClient::new(client("order-history", &*server, &gateway()));
        let orders = history.customer_orders("cust-pact").await.expect("orders");
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].status, OrderStatus::Confirmed);
    }
}

/// The order details the gateway composes: an order's reservation, authorizations and
/// notifications, each asked of its own service.
mod gateway_order_details {
    use super::*;

    #[tokio::test]
    async fn the_gateway_reads_an_orders_reservation_or_learns_there_is_none() {
        let mut p = pact("gateway", "inventory");
        p.interaction("a request for an order's reservation", "", |mut i| {
            i.given_with_params(
                inventory_states::RESERVATION_HELD,
                &json!({"reservation_id": "ord-pact-d1", "sku": "SKU-KEYBOARD", "quantity": 1}),
            );
            i.request.get().path("/reservations/ord-pact-d1");
            i.response.ok().json_body(json_pattern!({
                "reservation_id": like!("ord-pact-d1"),
                "status": like!("reserved"),
                "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
            }));
            i
        });
        p.interaction(
            "a request for the reservation of an order that has none",
            "",
            |mut i| {
                i.given_with_params(
                    inventory_states::NO_RESERVATION,
                    &json!({"reservation_id": "ord-pact-d2"}),
                );
                i.request.get().path("/reservations/ord-pact-d2");
                i.response
                    .status(404)
                    .json_body(json_pattern!({"error": like!("no reservation ord-pact-d2")}));
                i
            },
        );
        let server = p.start_mock_server(None, None);
        let inventory = InventoryClient::new(client("inventory", &*server, &gateway()));
        let held = inventory.reservation("ord-pact-d1").await.expect("held");
        assert_eq!(held.reservation_id, "ord-pact-d1");
        let none = inventory.reservation("ord-pact-d2").await.expect_err("404");
        assert_eq!(none.refused_status(), Some(404), "{none}");
    }

    #[tokio::test]
    async fn the_gateway_reads_an_orders_authorizations() {
        let mut p = pact("gateway", "payments");
        p.interaction("a request for an order's authorizations", "", |mut i| {
            i.given_with_params(
                payments_states::AUTHORIZED,
                &json!({"authorization_id": "auth-pact-d1", "order_id": "ord-pact-d1", "amount_cents": 8900}),
            );
            i.request
                .get()
                .path("/payments/authorizations")
                .query_param("order_id", "ord-pact-d1");
            i.response.ok().json_body(each_like!({
                "id": like!("auth-pact-d1"),
                "order_id": "ord-pact-d1",
                "amount_cents": like!(8900),
                "status": term!("^(authorized|declined|refunded)$", "authorized")
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let payments = PaymentsClient::new(client("payments", &*server, &gateway()));
        let list = payments
            .of_order("ord-pact-d1")
            .await
            .expect("authorizations");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, AuthorizationStatus::Authorized);
    }

    /// Over JSON-RPC 2.0: the interaction is the HTTP exchange that carries the call, its
    /// request ID matched by type (the client numbers its calls).
    #[tokio::test]
    async fn the_gateway_reads_what_a_customer_was_told_about_an_order() {
        let mut p = pact("gateway", "notifications");
        p.interaction(
            "a JSON-RPC call for an order's notifications",
            "",
            |mut i| {
                i.given_with_params(
                    notifications_states::ORDER_NOTIFIED,
                    &json!({"order_id": "ord-pact-d1", "customer_id": "cust-pact"}),
                );
                i.request
                    .post()
                    .path("/rpc")
                    .content_type("application/json")
                    .json_body(json_pattern!({
                        "jsonrpc": "2.0",
                        "id": like!(1),
                        "method": LIST_NOTIFICATIONS,
                        "params": {"order_id": "ord-pact-d1"}
                    }));
                i.response.ok().json_body(json_pattern!({
                    "jsonrpc": "2.0",
                    "id": like!(1),
                    "result": each_like!({
                        "order_id": "ord-pact-d1",
                        "customer_id": like!("cust-pact"),
                        "kind": term!("^order_(confirmed|cancelled|rejected)$", "order_confirmed"),
                        "message": like!("Your order ord-pact-d1 is confirmed."),
                        "event_id": like!("0")
                    })
                }));
                i
            },
        );
        let server = p.start_mock_server(None, None);
        let notifications = NotificationsClient::new(client("notifications", &*server, &gateway()));
        let q = NotificationQuery {
            order_id: Some("ord-pact-d1".into()),
            customer_id: None,
        };
        let list = notifications.list(&q).await.expect("notifications");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].kind, "order_confirmed");
    }
}

/// The backends for frontends: the gateway passes the web page's GraphQL and the mobile
/// app's routes on to them; they ask the services that hold the data.
mod gateway_to_bffs {
    use super::*;

    #[tokio::test]
    async fn the_gateway_passes_a_pages_query_on_and_relays_a_refusal() {
        let mut p = pact("gateway", "web-bff");
        p.interaction("a GraphQL query for the product list", "", |mut i| {
            i.request
                .post()
                .path("/graphql")
                .content_type("application/json")
                .json_body(json!({"query": "{ products { sku price inStock } }"}));
            i.response.ok().json_body(json_pattern!({
                "data": {
                    "products": each_like!({
                        "sku": like!("SKU-KEYBOARD"),
                        "price": term!("^[0-9]+\\.[0-9]{2}$", "89.00"),
                        "inStock": like!(true)
                    })
                }
            }));
            i
        });
        p.interaction("a GraphQL query naming an unknown field", "", |mut i| {
            i.request
                .post()
                .path("/graphql")
                .header("accept", GraphQlMedia::GRAPHQL_RESPONSE_JSON)
                .content_type("application/json")
                .json_body(json!({"query": "{ products { colour } }"}));
            i.response.status(400).json_body(json_pattern!({
                "errors": each_like!({
                    "message": like!("Unknown field \"colour\" on type \"Product\"."),
                    "locations": each_like!({"line": like!(1), "column": like!(14)})
                })
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let web = WebBffClient::new(client("web-bff", &*server, &gateway()));
        let page = web
            .query(&GraphQlRequest {
                query: "{ products { sku price inStock } }".into(),
                operation_name: None,
                variables: None,
                extensions: None,
            })
            .await
            .expect("page");
        assert_eq!(page.data.expect("data")["products"][0]["price"], "89.00");
        let refused = web
            .forward(
                r#"{"query":"{ products { colour } }"}"#.into(),
                Some(GraphQlMedia::GRAPHQL_RESPONSE_JSON),
            )
            .await
            .expect("relayed, not an error");
        assert_eq!(refused.status, 400);
        let body: GraphQlResponse = serde_json::from_slice(&refused.body).expect("errors");
        assert!(body.is_request_error());
        assert_eq!(body.errors[0].locations[0].column, 14);
    }

    #[tokio::test]
    async fn the_gateway_passes_the_apps_routes_on() {
        let mut p = pact("gateway", "mobile-bff");
        p.interaction("a request for the mobile product list", "", |mut i| {
            i.request.get().path("/mobile/products");
            i.response.ok().json_body(each_like!({
                "sku": like!("SKU-KEYBOARD"),
                "name": like!("Mechanical keyboard"),
                "price": term!("^[0-9]+\\.[0-9]{2}$", "89.00"),
                "in_stock": like!(true)
            }));
            i
        });
        p.interaction("a request for an order nobody placed", "", |mut i| {
            i.request.get().path("/mobile/orders/ord-nobody");
            i.response
                .status(404)
                .json_body(json_pattern!({"error": like!("no order ord-nobody")}));
            i
        });
        let server = p.start_mock_server(None, None);
        let mobile = MobileBffClient::new(client("mobile-bff", &*server, &gateway()));
        let list = mobile.products().await.expect("products");
        assert_eq!((list[0].price.as_str(), list[0].in_stock), ("89.00", true));
        let none = mobile.order("ord-nobody").await.expect_err("404");
        assert_eq!(none.refused_status(), Some(404), "{none}");
    }
}

/// The web BFF's schema resolved against Pact's mock servers: each test runs a GraphQL
/// query through the BFF's own resolvers, so the pact holds exactly the calls they make.
mod web_bff_to_services {
    use super::*;
    use gauntlet_demo_system::web_bff::{Upstreams, WebBff, WebBffConfig};

    /// The web BFF with each service at `url` (a mock server) or nowhere.
    fn bff(inventory: &str, history: &str, payments: &str) -> WebBff {
        let at = |name: &str, url: &str| {
            HttpClient::at(name, url.trim_end_matches('/'), &gateway()).expect("client")
        };
        let upstreams = Upstreams {
            inventory: InventoryClient::new(at("inventory", inventory)),
            history: OrderHistoryClient::new(at("order-history", history)),
            payments: PaymentsClient::new(at("payments", payments)),
        };
        WebBff::new(upstreams, &WebBffConfig::default())
    }

    fn query(q: &str) -> GraphQlRequest {
        GraphQlRequest {
            query: q.into(),
            operation_name: None,
            variables: None,
            extensions: None,
        }
    }

    const NOWHERE: &str = "http://127.0.0.1:9";

    #[tokio::test]
    async fn the_web_bff_lists_products_with_their_stock() {
        let mut p = pact("web-bff", "inventory");
        p.interaction("a request for the product list", "", |mut i| {
            i.given(inventory_states::IN_STOCK);
            i.request.get().path("/products");
            i.response.ok().json_body(each_like!({
                "sku": term!("^SKU-[A-Z]+$", "SKU-KEYBOARD"),
                "name": like!("Mechanical keyboard"),
                "price_cents": like!(8900),
                "stock": like!(120)
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let web = bff(server.url().as_str(), NOWHERE, NOWHERE);
        let answer = web
            .execute(query("{ products { sku price stock inStock } }"))
            .await;
        assert!(answer.errors.is_empty(), "{answer:?}");
        assert_eq!(
            answer.data.expect("data")["products"][0],
            json!({"sku": "SKU-KEYBOARD", "price": "89.00", "stock": 120, "inStock": true})
        );
    }

    /// A customer's orders (order-history) with each order's payments (payments): one
    /// query, two services, a pact with each.
    #[tokio::test]
    async fn the_web_bff_reads_a_customers_orders_with_their_payments_and_one_order() {
        let mut pay = pact("web-bff", "payments");
        pay.interaction("a request for an order's authorizations", "", |mut i| {
            i.given_with_params(
                payments_states::AUTHORIZED,
                &json!({"authorization_id": "auth-pact-w1", "order_id": "ord-pact-w1", "amount_cents": 8900}),
            );
            i.request
                .get()
                .path("/payments/authorizations")
                .query_param("order_id", "ord-pact-w1");
            i.response.ok().json_body(each_like!({
                "id": like!("auth-pact-w1"),
                "order_id": "ord-pact-w1",
                "amount_cents": like!(8900),
                "status": term!("^(authorized|declined|refunded)$", "authorized")
            }));
            i
        });
        let mut p = pact("web-bff", "order-history");
        let view = || {
            json_pattern!({
                "order_id": like!("ord-pact-w1"),
                "customer_id": like!("cust-pact"),
                "status": term!(ORDER_STATUS, "confirmed"),
                "total_cents": like!(8900),
                "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
            })
        };
        p.interaction("a request for a customer's orders", "", |mut i| {
            i.given_with_params(
                history_states::CUSTOMER_HAS_ORDER,
                &json!({"customer_id": "cust-pact", "order_id": "ord-pact-w1"}),
            );
            i.request.get().path("/customers/cust-pact/orders");
            i.response.ok().json_body(each_like!(view()));
            i
        });
        p.interaction("a request for an order's history", "", |mut i| {
            i.given_with_params(
                history_states::CUSTOMER_HAS_ORDER,
                &json!({"customer_id": "cust-pact", "order_id": "ord-pact-w1"}),
            );
            i.request.get().path("/orders/ord-pact-w1/history");
            i.response.ok().json_body(json_pattern!({
                "order_id": like!("ord-pact-w1"),
                "customer_id": like!("cust-pact"),
                "status": term!(ORDER_STATUS, "confirmed"),
                "total_cents": like!(8900),
                "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)}),
                "history": each_like!({
                    "status": term!(ORDER_STATUS, "confirmed"),
                    "at_unix_ms": like!(1_700_000_000_000_i64)
                })
            }));
            i
        });
        p.interaction(
            "a request for the history of an order nobody placed",
            "",
            |mut i| {
                i.request.get().path("/orders/ord-nobody/history");
                i.response.status(404).json_body(
                    json_pattern!({"error": like!("no order ord-nobody in the history")}),
                );
                i
            },
        );
        let server = p.start_mock_server(None, None);
        let payments = pay.start_mock_server(None, None);
        let web = bff(NOWHERE, server.url().as_str(), payments.url().as_str());
        let answer = web
            .execute(query(
                r#"{ customerOrders(customerId: "cust-pact") { id status total items { sku }
                       payments { id status amountCents } }
                     order(id: "ord-pact-w1") { id customerId }
                     nobody: order(id: "ord-nobody") { id } }"#,
            ))
            .await;
        assert!(answer.errors.is_empty(), "{answer:?}");
        assert_eq!(
            answer.data.expect("data"),
            json!({
                "customerOrders": [{
                    "id": "ord-pact-w1", "status": "confirmed", "total": "89.00",
                    "items": [{"sku": "SKU-KEYBOARD"}],
                    "payments": [{"id": "auth-pact-w1", "status": "authorized", "amountCents": 8900}]
                }],
                "order": {"id": "ord-pact-w1", "customerId": "cust-pact"},
                "nobody": null
            })
        );
    }
}

/// The mobile BFF's calls: the product list (over gRPC: its contract is the pinned
/// `.proto`, and the BFF's client is tried against a tonic mock of inventory's catalogue),
/// and an order or its absence (a pact).
mod mobile_bff_to_services {
    use super::*;
    use gauntlet_demo_system::inventory::grpc::proto;
    use gauntlet_demo_system::inventory::grpc::proto::catalog_server::{Catalog, CatalogServer};
    use gauntlet_demo_system::mobile_bff::MobileBff;
    use tonic::{Request, Response, Status};

    /// Inventory's catalogue as the BFF needs it: one keyboard in stock, one lamp sold out.
    struct MockCatalog;

    #[tonic::async_trait]
    impl Catalog for MockCatalog {
        async fn list_products(
            &self,
            _: Request<proto::ListProductsRequest>,
        ) -> Result<Response<proto::ListProductsResponse>, Status> {
            let product = |sku: &str, name: &str, price_cents, stock| proto::Product {
                sku: sku.into(),
                name: name.into(),
                price_cents,
                stock,
            };
            Ok(Response::new(proto::ListProductsResponse {
                products: vec![
                    product("SKU-KEYBOARD", "Mechanical keyboard", 8900, 120),
                    product("SKU-LAMP", "Desk lamp", 3413, 0),
                ],
            }))
        }

        async fn get_product(
            &self,
            _: Request<proto::GetProductRequest>,
        ) -> Result<Response<proto::Product>, Status> {
            Err(Status::unimplemented(
                "the BFF does not ask for one product",
            ))
        }
    }

    /// The mock on a real socket (HTTP/2, as gRPC is).
    async fn mock_catalog() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = tonic::service::Routes::new(CatalogServer::new(MockCatalog)).into_axum_router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn the_mobile_bff_trims_the_product_list_and_an_order() {
        let inv = mock_catalog().await;
        let mut ord = pact("mobile-bff", "orders");
        ord.interaction("a request for an order", "", |mut i| {
            i.given_with_params(
                orders_states::ORDER_REACHED,
                &reached("ord-pact-m1", "confirmed"),
            );
            i.request.get().path("/orders/ord-pact-m1");
            i.response.ok().json_body(order_pattern(
                "ord-pact-m1",
                term!(ORDER_STATUS, "confirmed").into(),
            ));
            i
        });
        ord.interaction("a request for an order nobody placed", "", |mut i| {
            i.request.get().path("/orders/ord-nobody");
            i.response
                .status(404)
                .json_body(json_pattern!({"error": like!("no order ord-nobody")}));
            i
        });
        let ord = ord.start_mock_server(None, None);
        let bff = MobileBff {
            inventory: CatalogClient::new(
                HttpClient::at("inventory", &inv, &gateway()).expect("client"),
            ),
            orders: OrdersClient::new(client("orders", &*ord, &gateway())),
        };
        let list = bff.products().await.expect("products");
        let trimmed: Vec<(&str, bool)> = list
            .iter()
            .map(|p| (p.price.as_str(), p.in_stock))
            .collect();
        assert_eq!(trimmed, [("89.00", true), ("34.13", false)]);
        let order = bff.order("ord-pact-m1").await.expect("order");
        assert_eq!(order.total, "89.00");
        let none = bff.order("ord-nobody").await.expect_err("404");
        assert_eq!(none.status.as_u16(), 404, "{}", none.message);
    }
}

/// The strangler fig: the old shop's routes the gateway still sends to the legacy. The same
/// pact holds for the new side of a moved route (`tests/contracts.rs` verifies the
/// catalogue's interaction against the gateway serving it from inventory).
mod gateway_to_legacy {
    use super::*;

    #[tokio::test]
    async fn the_gateway_reads_the_old_shops_catalogue_and_orders() {
        let mut p = pact("gateway", "legacy");
        p.interaction("a request for the old shop's catalogue", "", |mut i| {
            i.request.get().path("/shop/products");
            i.response.ok().json_body(json_pattern!({
                "products": each_like!({
                    "code": term!("^SKU-[A-Z]+$", "SKU-KEYBOARD"),
                    "title": like!("Mechanical keyboard"),
                    "price": term!("^[0-9]+\\.[0-9]{2}$", "89.00"),
                    "available": like!(120)
                })
            }));
            i
        });
        p.interaction("a request for an order the old shop took", "", |mut i| {
            i.request.get().path("/shop/orders/L-1001");
            i.response.ok().json_body(json_pattern!({
                "order_number": "L-1001",
                "customer": like!("customer-1"),
                "total": term!("^[0-9]+\\.[0-9]{2}$", "89.00"),
                "state": term!("^[A-Z_]+$", "CONFIRMED")
            }));
            i
        });
        p.interaction(
            "a request for an order the old shop does not know",
            "",
            |mut i| {
                i.request.get().path("/shop/orders/L-0");
                i.response
                    .status(404)
                    .json_body(json_pattern!({"error": like!("no order L-0")}));
                i
            },
        );
        let server = p.start_mock_server(None, None);
        let legacy = LegacyClient::new(client("legacy", &*server, &gateway()));
        let catalogue = legacy.catalogue().await.expect("catalogue");
        assert_eq!(catalogue.products[0].code, "SKU-KEYBOARD");
        let old = legacy.order("L-1001").await.expect("order");
        assert_eq!(old.state, "CONFIRMED");
        let unknown = legacy.order("L-0").await.expect_err("404");
        assert_eq!(unknown.refused_status(), Some(404), "{unknown}");
    }
}

mod orders_to_inventory {
    use super::*;

    fn reservation(id: &str, sku: &str) -> ReserveRequest {
        ReserveRequest {
            reservation_id: id.into(),
            items: vec![Item {
                sku: sku.into(),
                quantity: 1,
            }],
        }
    }

    #[tokio::test]
    async fn the_saga_reserves_stock_or_learns_there_is_none() {
        let mut p = pact("orders", "inventory");
        p.interaction("a reservation of stock", "", |mut i| {
            i.given(inventory_states::IN_STOCK);
            i.given_with_params(
                inventory_states::NO_RESERVATION,
                &json!({"reservation_id": "ord-pact-3"}),
            );
            i.request
                .post()
                .path("/reservations")
                .content_type("application/json")
                .json_body(json_pattern!({
                    // Exact: it tells this interaction from the next one.
                    "reservation_id": "ord-pact-3",
                    "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
                }));
            i.response.created().json_body(json_pattern!({
                "reservation_id": like!("ord-pact-3"),
                "status": "reserved",
                "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
            }));
            i
        });
        p.interaction("a reservation the stock cannot cover", "", |mut i| {
            i.given_with_params(inventory_states::OUT_OF_STOCK, &json!({"sku": "SKU-LAMP"}));
            i.given_with_params(
                inventory_states::NO_RESERVATION,
                &json!({"reservation_id": "ord-pact-4"}),
            );
            i.request
                .post()
                .path("/reservations")
                .content_type("application/json")
                .json_body(json_pattern!({
                    "reservation_id": "ord-pact-4",
                    "items": each_like!({"sku": like!("SKU-LAMP"), "quantity": like!(1)})
                }));
            i.response
                .status(409)
                .json_body(json_pattern!({"error": like!("not enough SKU-LAMP")}));
            i
        });
        let server = p.start_mock_server(None, None);
        let inventory = InventoryClient::new(client("inventory", &*server, &saga()));
        let made = inventory
            .reserve(&reservation("ord-pact-3", "SKU-KEYBOARD"))
            .await
            .expect("reserved");
        assert_eq!(made.status, 201);
        let refused = inventory
            .reserve(&reservation("ord-pact-4", "SKU-LAMP"))
            .await
            .expect_err("no stock");
        assert!(
            matches!(&refused, ClientError::Refused { status: 409, message, .. } if message.contains("SKU-LAMP")),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn the_saga_prices_an_order_from_the_product() {
        let mut p = pact("orders", "inventory");
        p.interaction("a request for a product", "", |mut i| {
            i.given(inventory_states::IN_STOCK);
            i.request.get().path("/products/SKU-KEYBOARD");
            i.response.ok().json_body(json_pattern!({
                "sku": "SKU-KEYBOARD",
                "name": like!("Mechanical keyboard"),
                "price_cents": like!(8900),
                "stock": like!(120)
            }));
            i
        });
        p.interaction(
            "a request for a product that does not exist",
            "",
            |mut i| {
                i.request.get().path("/products/SKU-NONE");
                i.response
                    .not_found()
                    .json_body(json_pattern!({"error": like!("no product SKU-NONE")}));
                i
            },
        );
        let server = p.start_mock_server(None, None);
        let inventory = InventoryClient::new(client("inventory", &*server, &saga()));
        let product = inventory.product("SKU-KEYBOARD").await.expect("product");
        assert_eq!(product.price_cents, 8900);
        let err = inventory.product("SKU-NONE").await.expect_err("unknown");
        assert_eq!(err.refused_status(), Some(404), "{err}");
    }

    #[tokio::test]
    async fn the_saga_confirms_and_releases_reservations() {
        let mut p = pact("orders", "inventory");
        for (id, action, status) in [
            ("res-pact-1", "confirm", "confirmed"),
            ("res-pact-2", "release", "released"),
        ] {
            p.interaction(
                format!("a request to {action} a held reservation"),
                String::new(),
                |mut i| {
                    i.given_with_params(
                        inventory_states::RESERVATION_HELD,
                        &json!({"reservation_id": id, "sku": "SKU-KEYBOARD", "quantity": 1}),
                    );
                    i.request
                        .post()
                        .path(format!("/reservations/{id}/{action}"))
                        .content_type("application/json")
                        .json_body(json!({}));
                    i.response.ok().json_body(json_pattern!({
                        "reservation_id": like!(id),
                        "status": status,
                        "items": each_like!({"sku": like!("SKU-KEYBOARD"), "quantity": like!(1)})
                    }));
                    i
                },
            );
        }
        let server = p.start_mock_server(None, None);
        let inventory = InventoryClient::new(client("inventory", &*server, &saga()));
        let confirmed = inventory.confirm("res-pact-1").await.expect("confirmed");
        assert_eq!(confirmed.status.as_str(), "confirmed");
        let released = inventory.release("res-pact-2").await.expect("released");
        assert_eq!(released.status.as_str(), "released");
    }
}

mod orders_to_payments {
    use super::*;

    fn authorization(status: &str) -> JsonPattern {
        json_pattern!({
            "id": like!("auth-1"),
            "order_id": like!("ord-pact-5"),
            "amount_cents": like!(8900),
            "status": status
        })
    }

    #[tokio::test]
    async fn the_saga_gets_an_authorization_or_a_decline() {
        let mut p = pact("orders", "payments");
        p.interaction("an authorization of an order's amount", "", |mut i| {
            i.request
                .post()
                .path("/payments/authorizations")
                .content_type("application/json")
                .json_body(json_pattern!({"order_id": "ord-pact-5", "amount_cents": like!(8900)}));
            i.response.created().json_body(authorization("authorized"));
            i
        });
        p.interaction("an authorization that is declined", "", |mut i| {
            i.given_with_params(payments_states::DECLINES, &json!({"cents": 13}));
            i.request
                .post()
                .path("/payments/authorizations")
                .content_type("application/json")
                .json_body(json_pattern!({"order_id": "ord-pact-6", "amount_cents": 3413}));
            i.response.status(402).json_body(json_pattern!({
                "id": like!("auth-2"),
                "order_id": like!("ord-pact-6"),
                "amount_cents": like!(3413),
                "status": "declined",
                "reason": like!("amounts ending in 13 cents are declined")
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let payments = PaymentsClient::new(client("payments", &*server, &saga()));
        let ok = payments
            .authorize(
                &AuthorizeRequest {
                    order_id: "ord-pact-5".into(),
                    amount_cents: 8900,
                },
                None,
            )
            .await
            .expect("authorized");
        assert_eq!(ok.status, AuthorizationStatus::Authorized);
        let declined = payments
            .authorize(
                &AuthorizeRequest {
                    order_id: "ord-pact-6".into(),
                    amount_cents: 3413,
                },
                None,
            )
            .await
            .expect("a decline is an answer");
        assert_eq!(declined.status, AuthorizationStatus::Declined);
        assert!(declined.reason.is_some());
    }

    #[tokio::test]
    async fn the_saga_refunds_an_authorization() {
        let mut p = pact("orders", "payments");
        p.interaction("a refund of an authorization", "", |mut i| {
            i.given_with_params(
                payments_states::AUTHORIZED,
                &json!({"authorization_id": "auth-pact-1", "order_id": "ord-pact-7", "amount_cents": 8900}),
            );
            i.request
                .post()
                .path("/payments/authorizations/auth-pact-1/refund")
                .content_type("application/json")
                .json_body(json!({}));
            i.response.ok().json_body(json_pattern!({
                "id": like!("auth-pact-1"),
                "order_id": like!("ord-pact-7"),
                "amount_cents": like!(8900),
                "status": "refunded"
            }));
            i
        });
        p.interaction("a refund of a declined authorization", "", |mut i| {
            i.given_with_params(
                payments_states::DECLINED,
                &json!({"authorization_id": "auth-pact-2", "order_id": "ord-pact-11", "amount_cents": 3413}),
            );
            i.request
                .post()
                .path("/payments/authorizations/auth-pact-2/refund")
                .content_type("application/json")
                .json_body(json!({}));
            i.response.status(409).json_body(json_pattern!({
                "error": like!("authorization auth-pact-2 was declined: there is nothing to refund")
            }));
            i
        });
        let server = p.start_mock_server(None, None);
        let payments = PaymentsClient::new(client("payments", &*server, &saga()));
        let refunded = payments
            .refund("auth-pact-1", None)
            .await
            .expect("refunded");
        assert_eq!(refunded.status, AuthorizationStatus::Refunded);
        // The saga takes 409 to mean: declined, nothing to refund.
        let declined = payments.refund("auth-pact-2", None).await.expect_err("409");
        assert_eq!(declined.refused_status(), Some(409), "{declined}");
    }
}

/// The order events, as message pacts: what the feed serves, fed to the consumer's own
/// handler through the consumer's own delivery path (dedup, cursor, transaction).
mod order_events {
    use super::*;

    fn event(n: usize, order_id: &str, kind: &str, status: &str, reason: bool) -> JsonPattern {
        let mut payload = json!({
            "id": order_id,
            "customer_id": "cust-pact",
            "items": [{"sku": "SKU-KEYBOARD", "quantity": 1}],
            "total_cents": 8900,
            "status": status,
        });
        if reason {
            payload["reason"] = json!("not enough SKU-KEYBOARD");
        }
        json_pattern!({
            "seq": like!(1),
            "id": term!(UUID, format!("0190b4b2-6f7e-7c0e-9d4c-1b2a3c4d5e{n:02x}")),
            "type": kind,
            "aggregate_id": like!(order_id),
            "payload": like!(payload),
            "created_unix_ms": like!(1_700_000_000_000_i64)
        })
    }

    fn messages(p: &mut PactBuilder, cases: &[(&str, &str, bool)]) {
        for (n, (order_id, status, reason)) in cases.iter().enumerate() {
            let kind = format!("order.{status}");
            let mut state = reached(order_id, status);
            if *reason {
                state["reason"] = json!("not enough SKU-KEYBOARD");
            }
            p.message_interaction(format!("an {kind} event"), |mut i| {
                i.given_with_params(orders_states::ORDER_REACHED, &state);
                i.json_body(event(n, order_id, &kind, status, *reason));
                i
            });
        }
    }

    fn decode(contents: Option<bytes::Bytes>) -> Event {
        let bytes = contents.expect("a message body");
        serde_json::from_slice(&bytes).expect("an Event")
    }

    /// The feed client a consumer is built with; delivery does not call it.
    fn unused_feed() -> HttpClient {
        HttpClient::at("orders", "http://127.0.0.1:9", &saga()).expect("client")
    }

    #[tokio::test]
    async fn notifications_tell_customers_about_finished_orders() {
        let mut p = pact("notifications", "orders");
        messages(
            &mut p,
            &[
                ("ord-pact-8", "confirmed", false),
                ("ord-pact-9", "rejected", true),
                ("ord-pact-12", "cancelled", true),
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let n = Notifications::open(&dir.path().join("n.sqlite")).expect("db");
        let consumer = n.consumer(unused_feed());
        let mut seen = 0;
        for m in p.messages() {
            let e = decode(m.contents.contents.value());
            assert!(
                consumer
                    .deliver(&Notifications::apply, e.clone())
                    .await
                    .expect("applied")
            );
            assert!(
                !consumer
                    .deliver(&Notifications::apply, e)
                    .await
                    .expect("again"),
                "applied once"
            );
            seen += 1;
        }
        assert_eq!(seen, 3);
        let all = n
            .list(NotificationQuery {
                customer_id: Some("cust-pact".into()),
                order_id: None,
            })
            .await
            .expect("list");
        let kinds: Vec<_> = all.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["order_confirmed", "order_rejected", "order_cancelled"]
        );
        assert!(
            all[1].message.contains("not enough SKU-KEYBOARD"),
            "{}",
            all[1].message
        );
    }

    #[tokio::test]
    async fn order_history_follows_every_step() {
        let mut p = pact("order-history", "orders");
        messages(
            &mut p,
            &[
                ("ord-pact-10", "pending", false),
                ("ord-pact-10", "stock_reserved", false),
                ("ord-pact-10", "payment_authorized", false),
                ("ord-pact-10", "confirmed", false),
                ("ord-pact-13", "compensating", true),
                ("ord-pact-13", "cancelled", true),
                ("ord-pact-14", "rejected", true),
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let h = OrderHistory::open(&dir.path().join("h.sqlite")).expect("db");
        let consumer = h.consumer(unused_feed());
        for (seq, m) in p.messages().enumerate() {
            let mut e = decode(m.contents.contents.value());
            // In feed order.
            e.seq = seq as i64 + 1;
            assert!(consumer.deliver(&h.handler(), e).await.expect("applied"));
        }
        let view = h
            .history("ord-pact-10")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(view.order.status, OrderStatus::Confirmed);
        let steps: Vec<_> = view.history.iter().map(|s| s.status).collect();
        use OrderStatus::*;
        assert_eq!(
            steps,
            [Pending, StockReserved, PaymentAuthorized, Confirmed]
        );
        let cancelled = h
            .history("ord-pact-13")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(cancelled.order.status, Cancelled);
        assert_eq!(
            cancelled.history[1].reason.as_deref(),
            Some("not enough SKU-KEYBOARD")
        );
        let rejected = h
            .history("ord-pact-14")
            .await
            .expect("read")
            .expect("known");
        assert_eq!(rejected.order.status, Rejected);
    }
}

/// Inventory's `stock.low`, as a message pact: the choreographed flow's one event, fed to
/// notifications' own handler through its consumer of inventory's feed.
mod stock_events {
    use super::*;
    use gauntlet_demo_system::inventory::{LOW_STOCK_UNITS, STOCK_LOW};
    use gauntlet_demo_system::notifications::INVENTORY_FEED;
    use gauntlet_demo_system::platform::outbox::Consumer;

    #[tokio::test]
    async fn notifications_tell_the_stock_team_a_product_ran_low() {
        let mut p = pact("notifications", "inventory");
        p.message_interaction("a stock.low event", |mut i| {
            i.given_with_params(
                inventory_states::RAN_LOW,
                &json!({"sku": "SKU-MONITOR", "reservation_id": "ord-pact-low", "quantity": 3}),
            );
            i.json_body(json_pattern!({
                "seq": like!(1),
                "id": term!(UUID, "0190b4b2-6f7e-7c0e-9d4c-1b2a3c4d5eff"),
                "type": STOCK_LOW,
                "aggregate_id": like!("SKU-MONITOR"),
                "payload": {
                    "sku": like!("SKU-MONITOR"),
                    "name": like!("27\" monitor"),
                    "on_hand": like!(LOW_STOCK_UNITS),
                    "threshold": like!(LOW_STOCK_UNITS),
                    "reservation_id": like!("ord-pact-low")
                },
                "created_unix_ms": like!(1_700_000_000_000_i64)
            }));
            i
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let n = Notifications::open(&dir.path().join("n.sqlite")).expect("db");
        let unused = HttpClient::at("inventory", "http://127.0.0.1:9", &saga()).expect("client");
        let consumer = Consumer::new(INVENTORY_FEED, unused, n.db().clone());
        let m = p.messages().next().expect("one message");
        let e: Event = serde_json::from_slice(&m.contents.contents.value().expect("a body"))
            .expect("an Event");
        assert!(
            consumer
                .deliver(&Notifications::apply, e.clone())
                .await
                .expect("applied")
        );
        assert!(
            !consumer
                .deliver(&Notifications::apply, e)
                .await
                .expect("again"),
            "applied once"
        );
        let alerts = n.stock_alerts().await.expect("alerts");
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].sku.as_str(), alerts[0].reservation_id.as_str()),
            ("SKU-MONITOR", "ord-pact-low")
        );
        assert!(
            alerts[0].message.starts_with("Restock 27\" monitor"),
            "{}",
            alerts[0].message
        );
        // An order event is no stock alert.
        let told = n.list(NotificationQuery::default()).await.expect("list");
        assert!(told.is_empty(), "{told:?}");
    }
}
