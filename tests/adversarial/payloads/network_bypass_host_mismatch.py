# HTTP to an allowed name's address asking for another Host, an absolute URL
# naming another host, or a second kept-alive request for another Host: each
# refused by the host's filter; the allowed request before it is answered.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "Host denied.test: 403\nabsolute URL: 403\nkept alive: first 200, second refused\n", "network_denied_contains": ["HTTP Host 'denied.test' is not the name connected to (allowed.test)", "request target names another host than Host"]}
import socket
def status_of(request):
    with socket.create_connection(("allowed.test", 80), timeout=10) as connection:
        connection.sendall(request)
        return connection.recv(100).split()[1].decode()
print("Host denied.test:", status_of(b"GET / HTTP/1.1\r\nHost: denied.test\r\n\r\n"))
print("absolute URL:", status_of(b"GET http://denied.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"))
with socket.create_connection(("allowed.test", 80), timeout=10) as connection:
    connection.sendall(b"GET /1 HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: denied.test\r\n\r\n")
    data = b""
    while True:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    first = data.split(b"\r\n")[0].split()[1].decode()
    second = "reached" if b"host=denied.test" in data else "refused"
    print(f"kept alive: first {first}, second {second}")
