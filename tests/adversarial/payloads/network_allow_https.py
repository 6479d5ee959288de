# An allowed name over HTTPS: a real TLS ClientHello from Python's ssl module
# passes the host's SNI check untouched and reaches the server.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "tls sni=allowed.test\n"}
import socket, ssl
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = context.wrap_bio(incoming, outgoing, server_hostname="allowed.test")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
with socket.create_connection(("allowed.test", 443), timeout=10) as connection:
    connection.sendall(outgoing.read())
    print(connection.recv(200).decode().strip())
