# 200 connections at once to an allowed name: the host's filter serves at
# most 64, refuses the rest (and says so), its stack never stalls, and once
# the flood is gone an ordinary request works again.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "opened: 200\nafter the flood: 200 host=allowed.test path=/after\n", "network_denied_contains": ["more than 64 connections at once"]}
import socket, time, urllib.request
flood = []
for _ in range(200):
    flood.append(socket.create_connection(("allowed.test", 80), timeout=10))
print("opened:", len(flood))
time.sleep(1)
for connection in flood:
    connection.close()
time.sleep(1)
reply = urllib.request.urlopen("http://allowed.test/after", timeout=10)
print("after the flood:", reply.status, reply.read().decode().strip())
