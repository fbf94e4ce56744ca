# Sourced by tests/run.sh and .ci/run. rust-toolchain.toml names a release
# (1.95.0); nothing can be downloaded on these machines, so where that
# release is installed only as "stable", it is linked under its own name.
ensure_toolchain() {
  local want
  want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  if rustup run "$want" rustc --version >/dev/null 2>&1; then return 0; fi
  if rustup run stable rustc --version 2>/dev/null | grep -q "^rustc $want "; then
    echo "linking the installed stable toolchain as $want"
    rustup toolchain link "$want" "$(rustup run stable rustc --print sysroot)"
  else
    echo "rust $want is not installed and cannot be downloaded here" >&2
    return 1
  fi
}
