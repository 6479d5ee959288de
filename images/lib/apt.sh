# shellcheck shell=bash
# apt access for the image recipes, as root or not, never touching the host's
# dpkg state: resolution runs against an empty dpkg status file (so the full
# dependency closure is computed, not the difference to this host), and
# Debian's own archives are pinned above every other source, so e.g. a
# configured nodesource repository cannot replace Debian's nodejs. Every
# resolved version must come from a Debian archive or the build fails.
#
# Part of the cache key of the rootfs images and of the cloud kernel.

APT_OPTS=()

# apt_init WORKDIR: private apt configuration under WORKDIR.
apt_init() {
  local dir=$1/apt
  mkdir -p "$dir/preferences.d"
  : >"$dir/status"
  cat >"$dir/preferences" <<'EOF'
Package: *
Pin: release o=Debian
Pin-Priority: 990
EOF
  APT_OPTS=(
    -q
    -o "Dir::State::status=$dir/status"
    -o "Dir::Etc::Preferences=$dir/preferences"
    -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Install-Recommends=false"
    -o "APT::Install-Suggests=false"
    -o "APT::Architecture=amd64"
    -o "APT::Architectures=amd64"
  )
  # As root apt downloads as user _apt, who cannot write into a private temp
  # directory; the files are verified against the signed index either way.
  if ((EUID == 0)); then
    APT_OPTS+=(-o "APT::Sandbox::User=root")
  fi
}

# apt_resolve PACKAGE...: prints "name version" for the whole dependency
# closure (Depends and Pre-Depends, no Recommends), sorted by name.
apt_resolve() {
  local out line name ver origins o bad=0
  local -a parts rows=()
  out=$(apt-get "${APT_OPTS[@]}" -s install -- "$@" 2>&1) ||
    die "apt-get could not resolve: $*"$'\n'"$out"
  while IFS= read -r line; do
    # Inst NAME (VERSION ORIGIN:REL/ARCHIVE[, ORIGIN:REL/ARCHIVE] [ARCH]) []
    [[ $line =~ ^Inst\ ([^ ]+)\ \(([^ ]+)\ (.*)\ \[[a-z0-9]+\]\) ]] || continue
    name=${BASH_REMATCH[1]}
    ver=${BASH_REMATCH[2]}
    origins=${BASH_REMATCH[3]}
    IFS=',' read -r -a parts <<<"$origins"
    for o in "${parts[@]}"; do
      o=${o# }
      if [[ $o != Debian:* && $o != Debian-Security:* ]]; then
        log "$name $ver comes from '$o', not a Debian archive"
        bad=1
      fi
    done
    rows+=("$name $ver")
  done <<<"$out"
  ((bad == 0)) || die "refusing packages from outside Debian's archives"
  ((${#rows[@]} > 0)) || die "apt-get resolved nothing for: $*"
  printf '%s\n' "${rows[@]}" | sort
}

# apt_download DIR NAME=VERSION...: fetch exact .deb versions into DIR.
apt_download() {
  local dir=$1
  shift
  (cd "$dir" && apt-get "${APT_OPTS[@]}" download -- "$@" >/dev/null) ||
    die "apt-get download failed for: $*"
}

# deb_extract DEB DEST: unpack a package's files (no maintainer scripts).
# Equivalent to `dpkg-deb -x`, except that directory symlinks already in DEST
# (the merged-/usr links /bin -> usr/bin etc.) are kept rather than replaced.
deb_extract() {
  dpkg-deb --fsys-tarfile "$1" |
    tar -x -C "$2" --keep-directory-symlink --no-same-owner --same-permissions \
      --delay-directory-restore
}
