# Allowed names whose (host-side) resolution is the cloud metadata address or
# a private one are refused by the host; the metadata address itself is unreachable.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "metadata.test: 403\nprivate.test: 403\n169.254.169.254:80 unreachable\n", "network_denied_contains": ["the cloud metadata service (169.254.169.254)", "private (10.0.0.0/8)"]}
import socket, urllib.error, urllib.request
for name in ["metadata.test", "private.test"]:
    try:
        urllib.request.urlopen(f"http://{name}/latest/meta-data/", timeout=10)
        print(f"{name}: reached")
    except urllib.error.HTTPError as error:
        print(f"{name}: {error.code}")
try:
    socket.create_connection(("169.254.169.254", 80), timeout=5).close()
    print("169.254.169.254:80 reached")
except OSError:
    print("169.254.169.254:80 unreachable")
