# shellcheck shell=bash
# Helpers shared by images/build and the per-artifact recipes. Nothing here
# changes what an artifact contains, so it is not part of any cache key.

log() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || die "required tool not found: $t"
  done
}

# hash_recipe FILE... [-- STRING...]: sha256 over the named files' contents
# (each prefixed by its path relative to images/, so a rename changes the key)
# and then the given strings. Prints the first 16 hex digits.
hash_recipe() {
  {
    while (($#)) && [[ $1 != -- ]]; do
      printf 'file %s\n' "${1#"$IMAGES_DIR"/}"
      sha256sum <"$1"
      shift
    done
    if (($#)); then
      shift
      printf 'arg %s\n' "$@"
    fi
  } | sha256sum | cut -c1-16
}

# Temporary directories made by this run, removed on exit however it ends.
TMP_DIRS=()
cleanup_tmp() {
  local d
  for d in "${TMP_DIRS[@]}"; do
    [[ -e $d ]] || continue
    chmod -R u+w "$d" 2>/dev/null || true
    rm -rf -- "$d"
  done
}
trap cleanup_tmp EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# make_tmp VAR PARENT NAME: sets VAR to a fresh directory under PARENT that
# is removed when this shell exits (so never call it inside $(...)). Built
# artifacts go here first and are renamed into place when complete, so PARENT
# must be on the same filesystem as the final location.
make_tmp() {
  local d
  d=$(mktemp -d "$2/.tmp-$3-XXXXXX")
  TMP_DIRS+=("$d")
  printf -v "$1" '%s' "$d"
}

# publish TMPDIR FINAL: atomically rename a finished artifact into the cache.
# A directory that exists under its final name is always complete, and its
# files are read-only: qcow2 overlays and snapshots may use them as backing.
publish() {
  find "$1" -type f -exec chmod a-w {} +
  chmod 0755 "$1"
  mv -T -- "$1" "$2"
}

# read_list FILE...: package or module names, one per line; '#' comments.
read_list() {
  sed -e 's/#.*//' -e 's/[[:space:]]\+/\n/g' -- "$@" | sed '/^$/d'
}
