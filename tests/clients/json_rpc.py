"""A JSON-RPC 2.0 client we did not write (jsonrpcclient) against notifications' `POST /rpc`.

Usage: json_rpc.py NOTIFICATIONS_URL ORDER_ID

Asks for the stock alerts; then sends one batch (the order's notifications, the alerts, a
method that does not exist, params the method does not take, and a notification, which
gets no answer); then a body that is not JSON. Prints what came back as JSON for the test.
"""

import json
import sys
import urllib.error
import urllib.request

from jsonrpcclient import Error, Ok, notification, parse_json, request

url = sys.argv[1].rstrip("/") + "/rpc"
order_id = sys.argv[2]


def post(body: str):
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def outcome(parsed):
    if isinstance(parsed, Ok):
        return {"id": parsed.id, "ok": parsed.result}
    if isinstance(parsed, Error):
        return {"id": parsed.id, "code": parsed.code, "message": parsed.message}
    raise TypeError(parsed)


out = {}
status, body = post(json.dumps(request("stock_alerts.list")))
out["alerts"] = {"status": status, **outcome(parse_json(body))}

batch = [
    request("notifications.list", params={"order_id": order_id}),
    request("stock_alerts.list"),
    request("notifications.send"),
    request("notifications.list", params={"colour": "red"}),
    notification("stock_alerts.list"),
]
status, body = post(json.dumps(batch))
out["batch"] = {
    "status": status,
    "sent": [r.get("id") for r in batch],
    "answers": [outcome(p) for p in parse_json(body)],
}

status, body = post("{not json")
out["garbage"] = {"status": status, **outcome(parse_json(body))}
print(json.dumps(out))
