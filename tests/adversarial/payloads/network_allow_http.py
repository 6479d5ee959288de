# An allowed name over HTTP reaches its server (a local stand-in, pinned by the
# daemon's test resolver); the server saw the Host the guest asked for.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "200 host=allowed.test path=/hello?x=1\n"}
import urllib.request
reply = urllib.request.urlopen("http://allowed.test/hello?x=1", timeout=10)
print(reply.status, reply.read().decode().strip())
