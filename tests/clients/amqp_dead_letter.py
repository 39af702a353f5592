"""An AMQP client we did not write (pika) against the demo's RabbitMQ.

Usage: amqp_dead_letter.py AMQP_URL QUEUE

Publishes a message whose body is not an event to the events exchange, routed as an order
event (with publisher confirms: the broker took it), then waits up to 20 s for it in QUEUE's
dead-letter queue (QUEUE.dead) and prints, as JSON, what it found: the body, the reason the
consumer gave (header x-gauntlet-error) and the routing key.
"""

import json
import sys
import time

import pika

url, queue = sys.argv[1], sys.argv[2]
body = b"{this is not an event"
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
ch.basic_publish(
    exchange="gauntlet.events",
    routing_key="orders.order.confirmed",
    body=body,
    properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
)
found = None
deadline = time.monotonic() + 20
while found is None and time.monotonic() < deadline:
    method, props, got = ch.basic_get(queue=queue + ".dead", auto_ack=True)
    if method is None:
        time.sleep(0.2)
        continue
    if got == body:
        found = {
            "body": got.decode(),
            "reason": (props.headers or {}).get("x-gauntlet-error"),
            "routing_key": method.routing_key,
        }
conn.close()
print(json.dumps(found))
