# shellcheck shell=bash
# Recipe for the fallback "cloud" kernel: Debian's linux-image-cloud-amd64,
# downloaded and unpacked (never installed on the host). Its payload is
# unpacked from the bzImage into a PVH vmlinux when possible (boots ~1 s
# faster under TCG); the modules named in cloud.modules are shipped
# uncompressed, in load order, for initramfs-cloud.cpio.
# Part of the cloud kernel's cache key, with cloud.modules and lib/apt.sh.

KERNEL_CLOUD_META=linux-image-cloud-amd64

# kernel_cloud_version: the meta package version apt would pick (Debian's).
kernel_cloud_version() {
  local v
  v=$(apt-cache "${APT_OPTS[@]}" policy "$KERNEL_CLOUD_META" | sed -n 's/^ *Candidate: //p')
  [[ -n $v && $v != "(none)" ]] || die "no candidate for $KERNEL_CLOUD_META (apt-get update?)"
  printf '%s\n' "$v"
}

# bzimage_to_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, if one of
# the usual compressors finds it and it carries a PVH entry point.
bzimage_to_vmlinux() {
  local in=$1 out=$2 magic tool off
  local -a pairs=(
    '\x02\x21\x4c\x18' 'lz4 -dc'
    '\x28\xb5\x2f\xfd' 'zstd -dcq'
    '\xfd\x37\x7a\x58\x5a\x00' 'xz -dcq'
    '\x1f\x8b\x08' 'gzip -dcq'
  )
  while ((${#pairs[@]})); do
    magic=${pairs[0]} tool=${pairs[1]}
    pairs=("${pairs[@]:2}")
    command -v "${tool%% *}" >/dev/null 2>&1 || continue
    while read -r off; do
      # shellcheck disable=SC2086 # tool holds a command and its flags
      tail -c +$((off + 1)) "$in" | $tool >"$out" 2>/dev/null || true
      if [[ $(head -c 4 "$out" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] &&
        readelf -n "$out" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'; then
        return 0
      fi
    done < <(LC_ALL=C grep -aboP "$magic" "$in" | cut -d: -f1 | head -n 5)
  done
  rm -f "$out"
  return 1
}

# modinfo_depends KO: the module's "depends=" list, one name per line.
modinfo_depends() {
  tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
}

# kernel_cloud_build OUT WORK: OUT gets vmlinux (or vmlinuz), config,
# modules/NN-name.ko and packages.txt.
kernel_cloud_build() {
  local out=$1 work=$2 meta_ver image_pkg image_ver deb root kdir f name
  need_tools apt-get dpkg-deb tar readelf
  meta_ver=$(kernel_cloud_version)
  image_pkg=$(apt-cache "${APT_OPTS[@]}" show "$KERNEL_CLOUD_META=$meta_ver" |
    sed -n 's/^Depends: //p' | head -n1 | tr ',' '\n' |
    sed -n 's/^ *\(linux-image-[^ ]*\) *(= *\([^)]*\)).*/\1 \2/p' | head -n1)
  [[ -n $image_pkg ]] || die "cannot find the kernel image package $KERNEL_CLOUD_META $meta_ver depends on"
  image_ver=${image_pkg#* }
  image_pkg=${image_pkg%% *}
  # Also checks that the package comes from Debian's archives.
  apt_resolve "$image_pkg=$image_ver" >/dev/null
  printf '%s %s\n%s %s\n' "$KERNEL_CLOUD_META" "$meta_ver" "$image_pkg" "$image_ver" >"$out/packages.txt"
  mkdir -p "$work/dl"
  apt_download "$work/dl" "$image_pkg=$image_ver"
  deb=$(compgen -G "$work/dl/${image_pkg}_*.deb" | head -n1)
  root=$work/root
  mkdir -p "$root"
  dpkg-deb -x "$deb" "$root"

  f=$(compgen -G "$root/boot/vmlinuz-*" | head -n1)
  [[ -n $f ]] || die "$image_pkg has no /boot/vmlinuz-*"
  if bzimage_to_vmlinux "$f" "$out/vmlinux"; then
    log "cloud kernel: unpacked the PVH vmlinux from $(basename "$f")"
  else
    log "warning: cannot unpack $(basename "$f"); shipping the bzImage"
    cp "$f" "$out/vmlinuz"
  fi
  cp "$root"/boot/config-* "$out/config"
  kdir=$(compgen -G "$root/lib/modules/*" | head -n1)
  [[ -n $kdir ]] || die "$image_pkg has no /lib/modules"
  basename "$kdir" >"$out/release"

  # Index the package's modules by module name (file names use '-' or '_').
  local -A path_of=() seen=()
  local ko base
  while IFS= read -r -d '' ko; do
    base=${ko##*/}
    base=${base%.ko*}
    path_of[${base//-/_}]=$ko
  done < <(find "$kdir" -name '*.ko*' -print0)

  # Depth-first, dependencies first, in cloud.modules order.
  local -a order=()
  add_module() {
    local m=${1//-/_} dep
    [[ -z ${seen[$m]:-} ]] || return 0
    seen[$m]=1
    [[ -n ${path_of[$m]:-} ]] || die "cloud kernel has no module $m (built in? check $out/config)"
    local plain=$work/mod-$m.ko
    case ${path_of[$m]} in
      *.ko) cp "${path_of[$m]}" "$plain" ;;
      *.ko.xz) xz -dc "${path_of[$m]}" >"$plain" ;;
      *.ko.zst) zstd -dcq "${path_of[$m]}" >"$plain" ;;
      *.ko.gz) gzip -dc "${path_of[$m]}" >"$plain" ;;
      *) die "unknown module compression: ${path_of[$m]}" ;;
    esac
    while read -r dep; do
      add_module "$dep"
    done < <(modinfo_depends "$plain")
    order+=("$m")
  }
  while read -r name; do
    add_module "$name"
  done < <(read_list "$IMAGES_DIR/kernel/cloud.modules")
  mkdir -p "$out/modules"
  local i=0
  for name in "${order[@]}"; do
    i=$((i + 1))
    cp "$work/mod-$name.ko" "$(printf '%s/modules/%02d-%s.ko' "$out" "$i" "$name")"
  done
}
