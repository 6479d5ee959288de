# An allowed server redirecting to a denied host: the client follows, and the
# denied name does not even resolve in the guest.
# request: {"network": "allow:allowed.test,mapped.test,metadata.test,private.test"}
# expect: {"status": "ok", "stdout": "redirect: refused (name does not resolve)\n"}
import socket, urllib.error, urllib.request
try:
    urllib.request.urlopen("http://allowed.test/redirect", timeout=10)
    print("redirect: reached")
except urllib.error.URLError as error:
    reason = "name does not resolve" if isinstance(error.reason, socket.gaierror) else str(error.reason)
    print(f"redirect: refused ({reason})")
