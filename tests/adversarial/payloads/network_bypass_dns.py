# No DNS leaves the guest: UDP to the virtual or a public resolver gets no
# answer, denied names do not resolve, and DNS-over-HTTPS to a resolver that is
# not allowed fails by name and by address.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "udp 10.0.2.3: no answer\nudp 8.8.8.8: no answer\ndenied.test: does not resolve\nhttps://dns.google: failed\nhttps://1.1.1.1: failed\n"}
import socket, urllib.request
query = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
for server in ["10.0.2.3", "8.8.8.8"]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(2)
    try:
        udp.sendto(query, (server, 53))
        udp.recv(512)
        print(f"udp {server}: answered")
    except OSError:
        print(f"udp {server}: no answer")
try:
    socket.getaddrinfo("denied.test", 443)
    print("denied.test: resolves")
except socket.gaierror:
    print("denied.test: does not resolve")
for url in ["https://dns.google", "https://1.1.1.1"]:
    try:
        urllib.request.urlopen(url + "/dns-query?name=example.com", timeout=5)
        print(f"{url}: reached")
    except OSError:
        print(f"{url}: failed")
