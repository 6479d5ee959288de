# No network device exists: TCP, UDP and DNS all fail at once.
# expect: {"status": "ok", "stdout": "interfaces: lo\ntcp: failed\nudp: failed\ndns: failed\n"}
import os, socket
print("interfaces: " + " ".join(sorted(name for _, name in socket.if_nameindex())))
def attempt(name, action):
    try:
        action()
        print(f"{name}: reached")
    except OSError:
        print(f"{name}: failed")
attempt("tcp", lambda: socket.create_connection(("93.184.216.34", 80), timeout=3))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)))
attempt("dns", lambda: socket.getaddrinfo("example.com", 80))
