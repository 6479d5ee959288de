# Connected to an allowed name's address but asking TLS for another name (or
# for none) is refused by the host with an unrecognized_name alert.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "sni denied.test: refused\nsni none: refused\n", "network_denied_contains": ["TLS server name 'denied.test' is not the name connected to (allowed.test)", "no server name"]}
import socket, ssl
def hello(name):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()
for name in ["denied.test", None]:
    with socket.create_connection(("allowed.test", 443), timeout=10) as connection:
        connection.sendall(hello(name))
        answer = connection.recv(200)
        print(f"sni {name or 'none'}:", "reached" if answer.startswith(b"tls sni=") else "refused")
