# With an allowlist, addresses are not names: IP literals lead nowhere, neither
# directly nor through an allowed name's address with a literal Host.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "93.184.216.34:80 refused\n1.1.1.1:443 refused\n10.0.2.2:80 refused\n10.0.2.3:53 refused\nHost literal: 403\n", "network_denied_contains": ["Host '93.184.216.34' is not a domain name"]}
import socket
for host, port in [("93.184.216.34", 80), ("1.1.1.1", 443), ("10.0.2.2", 80), ("10.0.2.3", 53)]:
    try:
        socket.create_connection((host, port), timeout=5).close()
        print(f"{host}:{port} reached")
    except OSError:
        print(f"{host}:{port} refused")
with socket.create_connection(("allowed.test", 80), timeout=10) as connection:
    connection.sendall(b"GET / HTTP/1.1\r\nHost: 93.184.216.34\r\n\r\n")
    print("Host literal:", connection.recv(100).split()[1].decode())
