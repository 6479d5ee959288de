# IPv6 tricks: an allowed name resolving to an IPv4-mapped loopback address is
# refused by the host; IPv6 literals (global or mapped) lead nowhere.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "mapped.test: 403\n2606:4700::1111 refused\n::ffff:1.1.1.1 refused\n::1 refused\n", "network_denied_contains": ["IPv4-mapped IPv6 form of an IPv4 address that is loopback"]}
import socket, urllib.error, urllib.request
try:
    urllib.request.urlopen("http://mapped.test/", timeout=10)
    print("mapped.test: reached")
except urllib.error.HTTPError as error:
    print(f"mapped.test: {error.code}")
for address in ["2606:4700::1111", "::ffff:1.1.1.1", "::1"]:
    try:
        socket.create_connection((address, 443), timeout=5).close()
        print(f"{address} reached")
    except OSError:
        print(f"{address} refused")
