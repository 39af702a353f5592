"""The shop's web page as a GraphQL client: gql (Python's GraphQL client) validates each
query against the web BFF's checked-in SDL before sending it through the gateway.

Usage: web_page.py GRAPHQL_URL SDL_FILE CORRELATION_ID CUSTOMER_ID
Prints one JSON object: the page's data, the error the client raised itself for a query
the schema does not have, and the errors the server sent for a query past its limits.
"""

import json
import sys

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from graphql import GraphQLError

url, sdl_path, correlation_id, customer = sys.argv[1:5]
with open(sdl_path, encoding="utf-8") as f:
    sdl = f.read()
transport = RequestsHTTPTransport(
    url=url, headers={"x-correlation-id": correlation_id}, retries=0, timeout=10
)
client = Client(schema=sdl, transport=transport)

PAGE = gql(
    """
    query Page($customer: String!) {
      products { sku name price inStock }
      customerOrders(customerId: $customer) { id status total payments { status amountCents } }
    }
    """
)
out = {"page": client.execute(PAGE, variable_values={"customer": customer}, operation_name="Page")}

try:
    client.execute(gql("{ products { colour } }"))
    out["refused_by_client"] = None
except GraphQLError as e:
    out["refused_by_client"] = str(e)

costly = " ".join(
    f'o{n}: customerOrders(customerId: "c") {{ id payments {{ id status amountCents reason }} }}'
    for n in range(3)
)
try:
    client.execute(gql("{ " + costly + " }"))
    out["refused_by_server"] = None
except TransportQueryError as e:
    out["refused_by_server"] = e.errors

print(json.dumps(out))
