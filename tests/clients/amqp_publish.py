"""An AMQP client we did not write (pika) publishing messages to the demo's RabbitMQ.

Usage: amqp_publish.py AMQP_URL < MESSAGES_JSON

MESSAGES_JSON is a list of [routing_key, body]; each body (any JSON) is published to the
events exchange under its routing key, persistent, with publisher confirms (the broker took
it, or this exits non-zero). Prints how many were confirmed.
"""

import json
import sys

import pika

url = sys.argv[1]
messages = json.load(sys.stdin)
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
for key, body in messages:
    ch.basic_publish(
        exchange="gauntlet.events",
        routing_key=key,
        body=json.dumps(body).encode(),
        properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )
conn.close()
print(len(messages))
