# shellcheck shell=bash
# Recipe for the minimal guest kernel: Debian's linux-source-6.1, `make
# tinyconfig`, then kernel/minimal.config merged over it, built as a PVH
# vmlinux with everything built in. Part of the kernel's cache key, together
# with minimal.config and the linux-source package version.

KERNEL_SOURCE_PKG=linux-source-6.1
KERNEL_SOURCE_TARBALL=/usr/src/linux-source-6.1.tar.xz

# kernel_minimal_source_version: the Debian version of the source package.
kernel_minimal_source_version() {
  dpkg-query -W -f='${Version}' "$KERNEL_SOURCE_PKG" 2>/dev/null ||
    die "$KERNEL_SOURCE_PKG is not installed (apt-get install $KERNEL_SOURCE_PKG)"
}

# kernel_config_check FRAGMENT CONFIG: every `CONFIG_X=v` line of FRAGMENT must
# be in CONFIG as is, every `# CONFIG_X is not set` line must not be set there.
# Kconfig silently drops options whose dependencies are missing, and some
# options are forced on by `select`; this is where either shows up.
kernel_config_check() {
  local fragment=$1 config=$2 line opt bad=0
  while IFS= read -r line; do
    case $line in
      CONFIG_*=*)
        if ! grep -qxF -- "$line" "$config"; then
          log "kernel config: wanted '$line', got '$(grep -E "^(# )?${line%%=*}[= ]" "$config" || echo "${line%%=*} absent")'"
          bad=1
        fi
        ;;
      "# CONFIG_"*" is not set")
        opt=${line#\# }
        opt=${opt%% *}
        if grep -q "^$opt=" "$config"; then
          log "kernel config: unwanted '$(grep "^$opt=" "$config")'"
          bad=1
        fi
        ;;
    esac
  done <"$fragment"
  ((bad == 0)) || die "kernel config does not match $fragment (see above)"
}

# kernel_minimal_build OUT WORK: build into WORK, leave vmlinux and config in OUT.
kernel_minimal_build() {
  local out=$1 work=$2 src jobs
  local fragment=$IMAGES_DIR/kernel/minimal.config
  need_tools make gcc flex bison bc tar xz
  [[ -r $KERNEL_SOURCE_TARBALL ]] || die "missing $KERNEL_SOURCE_TARBALL"
  jobs=$(nproc)
  log "unpacking $KERNEL_SOURCE_TARBALL"
  tar -xf "$KERNEL_SOURCE_TARBALL" -C "$work"
  src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
  [[ -n $src ]] || die "no linux-source-* directory in $KERNEL_SOURCE_TARBALL"

  # Fixed identity and time so the build does not record who made it.
  local -a kmake=(make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=airlock
    KBUILD_BUILD_HOST=airlock "KBUILD_BUILD_TIMESTAMP=1970-01-01")
  "${kmake[@]}" -s tinyconfig >"$work/config.log" 2>&1 ||
    die "make tinyconfig failed: $(tail -n 20 "$work/config.log")"
  (cd "$src" && scripts/kconfig/merge_config.sh -m .config "$fragment") >>"$work/config.log" 2>&1 ||
    die "merge_config.sh failed: $(tail -n 20 "$work/config.log")"
  "${kmake[@]}" -s olddefconfig >>"$work/config.log" 2>&1 ||
    die "make olddefconfig failed: $(tail -n 20 "$work/config.log")"
  kernel_config_check "$fragment" "$src/.config"

  log "building the minimal kernel with make -j$jobs (about 7 min on 2 cores; log: $work/build.log)"
  if ! "${kmake[@]}" -j"$jobs" vmlinux >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "kernel build failed"
  fi
  cp "$src/vmlinux" "$out/vmlinux"
  cp "$src/.config" "$out/config"
  "${kmake[@]}" -s kernelrelease >"$out/release"
}
