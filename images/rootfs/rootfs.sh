# shellcheck shell=bash
# Recipe for the per-language root filesystems: the dependency closure of
# base.packages + <lang>.packages from Debian's archives, unpacked without
# maintainer scripts, trimmed, and written into an ext4 image by mke2fs -d.
# Needs no root: no mount, no chroot; ownership is fixed up in the image.
# Part of every rootfs cache key, with lib/apt.sh and the package lists.

ROOTFS_FREE_MIB=256 # free space beyond the content, for runs that write

# rootfs_lists IMAGE LIST...: the package list files of an image.
rootfs_lists() {
  local list
  printf '%s\n' "$IMAGES_DIR/rootfs/base.packages"
  for list in "${@:2}"; do printf '%s\n' "$IMAGES_DIR/rootfs/$list.packages"; done
}

# rootfs_fetch DEBS RESOLVED: make sure every "name version" line of RESOLVED
# has its .deb in DEBS. The directory is a cache shared by all images; a file
# appears there only once fully downloaded and verified by apt.
rootfs_fetch() {
  local debs=$1 resolved=$2 name ver tmp
  local -a missing=()
  while read -r name ver; do
    compgen -G "$debs/${name}_${ver//:/%3a}_*.deb" >/dev/null || missing+=("$name=$ver")
  done <<<"$resolved"
  ((${#missing[@]} > 0)) || return 0
  log "downloading ${#missing[@]} packages"
  make_tmp tmp "$debs" fetch
  apt_download "$tmp" "${missing[@]}"
  mv -- "$tmp"/*.deb "$debs"/
}

# rootfs_skeleton ROOT: what a root needs that no package provides (the
# maintainer scripts that would make some of it are never run).
rootfs_skeleton() {
  local root=$1
  mkdir -p "$root"/{proc,sys,dev,run,mnt,root,etc,home/sandbox,tmp,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 0700 "$root/root"
  chmod 0755 "$root/home/sandbox"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
sandbox:x:1000:
nogroup:x:65534:
EOF
  cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
EOF
  echo sandbox >"$root/etc/hostname"
  cat >"$root/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 sandbox
::1 localhost ip6-localhost ip6-loopback
EOF
  ln -sfn ../proc/self/mounts "$root/etc/mtab"
  # dash's maintainer script would make /bin/sh; bash's would not be missed.
  [[ -e $root/usr/bin/sh ]] || ln -s dash "$root/usr/bin/sh"
  chmod 0644 "$root"/etc/{passwd,group,nsswitch.conf,hostname,hosts}
}

# rootfs_ca_bundle ROOT: what update-ca-certificates (ca-certificates'
# maintainer script) makes: /etc/ssl/certs with the bundle every TLS library
# here reads by default (OpenSSL's cert.pem, GnuTLS and curl point at it) and
# a link per certificate under its subject hash, for programs that look there.
rootfs_ca_bundle() {
  local root=$1 certs=$1/etc/ssl/certs crt name
  [[ -d $root/usr/share/ca-certificates/mozilla ]] || return 0
  mkdir -p "$certs"
  : >"$certs/ca-certificates.crt"
  while IFS= read -r -d '' crt; do
    name=${crt##*/}
    ln -sfn "../../../usr/share/ca-certificates/mozilla/$name" "$certs/${name%.crt}.pem"
    sed -e '$a\' -- "$crt" >>"$certs/ca-certificates.crt"
  done < <(find "$root/usr/share/ca-certificates/mozilla" -name '*.crt' -print0 | LC_ALL=C sort -z)
  chmod 0644 "$certs/ca-certificates.crt"
  [[ -s $certs/ca-certificates.crt ]] || die "no CA certificates found for the bundle"
  openssl rehash "$certs" >/dev/null 2>&1 || log "warning: openssl rehash failed; only the bundle is there"
}

# rootfs_alternatives ROOT DEB...: the links update-alternatives would make
# in the packages' maintainer scripts (never run here): libblas.so.3 and
# liblapack.so.3 (numpy), which, lzma, js, ... For each name the highest
# priority candidate present in ROOT wins, with its slaves, as on an
# installed system. Arguments built by shell code ($VAR, $(...)) are skipped.
rootfs_alternatives() {
  local root=$1 deb
  shift
  for deb in "$@"; do
    dpkg-deb -I "$deb" postinst 2>/dev/null || true
    printf '\n'
  done | /usr/bin/python3 -c '
import os, shlex, sys
root = sys.argv[1]
script = sys.stdin.read().replace("\\\n", " ")
best = {}
for line in script.splitlines():
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        continue
    while "update-alternatives" in words:
        words = words[words.index("update-alternatives") + 1 :]
        while words and words[0] in ("--quiet", "--verbose", "--force"):
            words = words[1:]
        if not words or words[0] != "--install" or len(words) < 5:
            continue
        link, name, path, priority = words[1:5]
        if any("$" in w for w in (link, name, path, priority)) or not priority.isdigit():
            continue
        links = [(link, path)]
        rest = words[5:]
        while len(rest) >= 4 and rest[0] == "--slave" and not any("$" in w for w in rest[1:4]):
            links.append((rest[1], rest[3]))
            rest = rest[4:]
        if os.path.lexists(root + path) and (name not in best or int(priority) > best[name][0]):
            best[name] = (int(priority), links)
for name, (priority, links) in sorted(best.items()):
    for link, path in links:
        if os.path.lexists(root + path) and not os.path.lexists(root + link):
            os.makedirs(os.path.dirname(root + link), exist_ok=True)
            os.symlink(path, root + link)
' "$root" || die "applying update-alternatives links failed"
}

# rootfs_trim ROOT: drop what no program reads at run time; keep copyrights.
rootfs_trim() {
  local root=$1
  rm -rf "$root"/usr/share/{man,info,locale,lintian,bug,doc-base,menu,gdb} \
    "$root"/var/cache/* "$root"/var/lib/dpkg/* "$root"/etc/cron.daily
  if [[ -d $root/usr/share/doc ]]; then
    find "$root/usr/share/doc" -mindepth 1 \( -type f -o -type l \) ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  fi
}

# rootfs_reseed_hooks ROOT: what makes the generators inside running Python
# and Node processes reseed in a copy of a live sandbox (hooks/; the agent
# sends SIGURG, docs/snapshots.md). Python loads sitecustomize at start
# (Debian's links to an apport hook we do not ship); Node loads reseed.js
# through NODE_OPTIONS, which the engine sets for javascript.
rootfs_reseed_hooks() {
  local root=$1 dir
  dir=$(find "$root/usr/lib" -maxdepth 1 -type d -name 'python3.*' | sort | tail -n1)
  if [[ -n $dir ]]; then
    rm -f "$dir/sitecustomize.py"
    install -m 0644 "$IMAGES_DIR/rootfs/hooks/sitecustomize.py" "$dir/sitecustomize.py"
  fi
  if [[ -e $root/usr/bin/node ]]; then
    install -D -m 0644 "$IMAGES_DIR/rootfs/hooks/reseed.js" "$root/usr/lib/airlock/reseed.js"
  fi
}

# rootfs_compile_python ROOT: byte-compile the staged stdlib with the host's
# Debian python3 when it is the same X.Y (same .pyc magic), so the guest
# never compiles on import (slow under TCG, and its root is read-only).
# unchecked-hash .pyc files are used without looking at the source's mtime.
rootfs_compile_python() {
  local root=$1 host=/usr/bin/python3 dir ver hostver
  local -a dirs=()
  dir=$(find "$root/usr/lib" -maxdepth 1 -type d -name 'python3.*' | sort | tail -n1)
  [[ -n $dir ]] || return 0
  ver=${dir##*/python}
  hostver=$("$host" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
  if [[ $hostver != "$ver" ]]; then
    log "warning: host $host is '${hostver:-missing}', guest is $ver: stdlib not precompiled"
    return 0
  fi
  dirs=("$dir")
  [[ -d $root/usr/lib/python3/dist-packages ]] && dirs+=("$root/usr/lib/python3/dist-packages")
  "$host" -m compileall -q -j 0 -s "$root" -p / --invalidation-mode unchecked-hash \
    -x '/(test|tests|idle_test)/' "${dirs[@]}" >/dev/null ||
    die "compileall failed on $dir"
}

# rootfs_fix_owners IMAGE ROOT: mke2fs -d copies the builder's uid/gid; make
# every file root's (only needed when not building as root), and hand the
# sandbox user its home.
rootfs_fix_owners() {
  local image=$1 root=$2 path
  {
    if ((EUID != 0)); then
      while IFS= read -r -d '' path; do
        [[ $path != *'"'* && $path != *$'\n'* ]] || die "unsupported file name: $path"
        printf 'sif "/%s" uid 0\nsif "/%s" gid 0\n' "$path" "$path"
      done < <(cd "$root" && find . -mindepth 1 -printf '%P\0')
    fi
    printf 'sif /home/sandbox uid 1000\nsif /home/sandbox gid 1000\n'
    if [[ -d $root/var/cache/airlock ]]; then
      while IFS= read -r -d '' path; do
        printf 'sif "/%s" uid 1000\nsif "/%s" gid 1000\n' "$path" "$path"
      done < <(cd "$root" && find var/cache/airlock -mindepth 1 -maxdepth 1 -type d -printf '%P\0' |
        sed -z 's|^|var/cache/airlock/|')
    fi
  } >"$root.debugfs"
  debugfs -w -f "$root.debugfs" "$image" >/dev/null 2>"$root.debugfs.err" ||
    die "debugfs failed: $(tail -n 5 "$root.debugfs.err")"
  if grep -v '^debugfs ' "$root.debugfs.err" | grep -q .; then
    die "debugfs: $(grep -v '^debugfs ' "$root.debugfs.err" | head -n 5)"
  fi
}

# rootfs_extra ROOT IMAGE: the image's own files (rootfs/extra/IMAGE/), as
# they are in the repository, root's and world-readable; a directory named
# var/cache/airlock/* is made the sandbox user's (a cache its programs fill:
# see rootfs_fix_owners).
rootfs_extra() {
  local root=$1 dir=$IMAGES_DIR/rootfs/extra/$2
  [[ -d $dir ]] || return 0
  cp -R --no-preserve=ownership -- "$dir/." "$root/"
  chmod -R u=rwX,go=rX -- "$root/etc" "$root/usr" "$root/var" 2>/dev/null || true
}

# rootfs_build OUT WORK IMAGE DEBS LIST...: OUT gets rootfs.ext4 and
# packages.txt. apt_init must have been called.
rootfs_build() {
  local out=$1 work=$2 lang=$3 debs=$4
  local root=$work/root image=$out/rootfs.ext4 resolved deb content_kib inodes size_mib
  local -a pkgs lists
  need_tools apt-get dpkg-deb tar mke2fs debugfs e2fsck
  mapfile -t lists < <(rootfs_lists "$lang" "${@:5}")
  mapfile -t pkgs < <(read_list "${lists[@]}")
  resolved=$(apt_resolve "${pkgs[@]}")
  printf '%s\n' "$resolved" >"$out/packages.txt"
  rootfs_fetch "$debs" "$resolved"

  # Merged /usr, as Debian 12 itself is installed.
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  local name ver
  local -a unpacked=()
  while read -r name ver; do
    for deb in "$debs/${name}_${ver//:/%3a}"_*.deb; do
      deb_extract "$deb" "$root"
      unpacked+=("$deb")
    done
  done <<<"$resolved"
  rootfs_alternatives "$root" "${unpacked[@]}"
  rootfs_trim "$root"
  rootfs_skeleton "$root"
  rootfs_ca_bundle "$root"
  rootfs_reseed_hooks "$root"
  rootfs_extra "$root" "$lang"
  rootfs_compile_python "$root"

  # Size: the content, ~10% for ext4 metadata, the promised free space.
  content_kib=$(du -sk "$root" | cut -f1)
  inodes=$(find "$root" | wc -l)
  size_mib=$(((content_kib * 11 / 10 + inodes / 4) / 1024 + ROOTFS_FREE_MIB + 16))
  truncate -s "${size_mib}M" "$image" # sparse
  mke2fs -q -F -t ext4 -O ^has_journal -b 4096 -m 0 -L "$lang" \
    -N $((inodes + 16384)) -E root_owner=0:0,lazy_itable_init=0 \
    -d "$root" "$image" ||
    die "mke2fs failed for $lang"
  rootfs_fix_owners "$image" "$root"
  e2fsck -fn "$image" >"$work/e2fsck.log" 2>&1 ||
    die "e2fsck found problems in $image: $(tail -n 5 "$work/e2fsck.log")"
}
