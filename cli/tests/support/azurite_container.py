"""Creates or lists a blob container in Azurite, signing with the emulator's
well-known SharedKey (object_store has no call to create a container).

Usage: python3 azurite_container.py http://127.0.0.1:PORT CONTAINER create|list
`list` prints the names of the container's blobs, one per line.
"""
import base64
import hashlib
import hmac
import re
import sys
import urllib.request
from email.utils import formatdate

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

base, container, action = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
method, query = ("PUT", {"restype": "container"}) if action == "create" else (
    "GET",
    {"comp": "list", "restype": "container"},
)
headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
resource = f"/{ACCOUNT}/{ACCOUNT}/{container}" + "".join(
    f"\n{k}:{v}" for k, v in sorted(query.items())
)
to_sign = method + "\n" + "\n" * 11 + canonical_headers + resource
signature = base64.b64encode(
    hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()
).decode()
query_string = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
request = urllib.request.Request(
    f"{base}/{ACCOUNT}/{container}?{query_string}",
    method=method,
    headers={**headers, "Authorization": f"SharedKey {ACCOUNT}:{signature}"},
)
with urllib.request.urlopen(request) as response:
    body = response.read().decode()
    if action == "list":
        for name in re.findall(r"<Name>([^<]*)</Name>", body):
            print(name)
