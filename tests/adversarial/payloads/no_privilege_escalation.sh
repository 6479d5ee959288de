# The program runs as an unprivileged user with no_new_privs: no root, no
# shadow file, no setuid path back.
# expect: {"status": "ok", "stdout": "uid=1000 gid=1000 groups=1000\nshadow: denied\nNoNewPrivs:\t1\n"}
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
cat /etc/shadow >/dev/null 2>&1 && echo "shadow: readable" || echo "shadow: denied"
grep NoNewPrivs /proc/self/status
