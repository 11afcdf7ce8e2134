# kubestrap remote helpers. Output protocol, one per line:
#   CHANGED <what>   this run changed <what> on the host
#   OK <what>        <what> was already as wanted
#   FACT <k>=<v>     a fact for the console
#   FAIL <message>   (stderr) the step failed; the script exits 1
#   BEGIN diff <path> ... END diff <path>   (plans) what `put` would change in <path>
# With KS_DRY=1 (`kubestrap plan`) nothing on the host changes: every change goes through `put`
# or `act`, which only announce it, with the same CHANGED line a real run prints.
set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022
fail() { echo "FAIL $*" >&2; exit 1; }
# W: this script's private work directory (mode 0700, a fresh random name), removed on exit.
# Nothing is ever written as root under a fixed name in /tmp.
W=$(mktemp -d /tmp/kubestrap.XXXXXXXX) || fail "cannot make a private work directory in /tmp"
trap 'rm -rf "$W"' EXIT
KS_DRY=0
# act CMD...: run CMD, which changes the host; in a plan only pretend it succeeded.
act() { [ "$KS_DRY" = 1 ] || "$@"; }
changed() { echo "CHANGED $*"; }
ok() { echo "OK $*"; }
# put PATH MODE < content: write PATH only when its content differs; returns 0 when it changed.
put() {
  _p=$1; _m=$2; _d=$(dirname "$_p")
  if [ "$KS_DRY" = 1 ]; then
    _t=$(mktemp "$W/put.XXXXXX") || fail "cannot write in $W"
  else
    mkdir -p "$_d" || fail "cannot create $_d"
    _t=$(mktemp "$_d/.kubestrap.XXXXXX") || fail "cannot write in $_d"
  fi
  cat > "$_t"
  if [ -f "$_p" ] && cmp -s "$_t" "$_p"; then
    rm -f "$_t"; act chmod "$_m" "$_p"; ok "$_p"; return 1
  fi
  if [ "$KS_DRY" = 1 ]; then
    echo "BEGIN diff $_p"
    if [ -f "$_p" ]; then diff -u "$_p" "$_t" | tail -n +3; else echo "new file, $(wc -c < "$_t") bytes, mode $_m"; fi
    echo "END diff $_p"
    rm -f "$_t"; changed "$_p"; return 0
  fi
  chmod "$_m" "$_t" && mv -f "$_t" "$_p" || fail "cannot write $_p"
  changed "$_p"; return 0
}
apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold "$@"; }
# sha256_of FILE [record]: FILE's sha256 (empty if missing). A stamp FILE.sha256 ("size mtime
# ctime inode sum") lets an unchanged file skip re-hashing; with `record` the stamp is (re)written.
sha256_of() {
  [ -f "$1" ] || return 0
  _st=$(stat -c '%s %Y %Z %i' "$1")
  if [ -f "$1.sha256" ]; then
    _r=""; read -r _r < "$1.sha256"; if [ "${_r% *}" = "$_st" ]; then echo "${_r##* }"; return 0; fi
  fi
  _s=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "${2:-}" = record ] && [ "$KS_DRY" = 0 ]; then echo "$_st $_s" > "$1.sha256"; fi
  echo "$_s"
}
# units_show UNIT...: read the enabled and active state of UNITs with one systemctl call (each
# call can cost ~0.1 s); unit_enabled / unit_active answer from it and ask systemctl itself only
# when the cached answer is "no" (the state may have changed since).
_units_list=""; _units_out=""
units_show() { _units_list="$*"; _units_out=$(systemctl show -p UnitFileState -p ActiveState "$@" 2>/dev/null) || _units_out=""; }
unit_prop() {
  _i=0; _n=0; for _u in $_units_list; do _i=$((_i+1)); [ "$_u" = "$1" ] && _n=$_i; done
  [ $_n -gt 0 ] || return 0
  printf '%s\n' "$_units_out" | awk -v k="$2=" -v n="$_n" 'index($0, k) == 1 { c++; if (c == n) { print substr($0, length(k) + 1); exit } }'
}
unit_enabled() {
  case "$(unit_prop "$1" UnitFileState)" in enabled|static|alias|enabled-runtime) return 0 ;; esac
  systemctl is-enabled -q "$1" 2>/dev/null
}
unit_active() { [ "$(unit_prop "$1" ActiveState)" = active ] || systemctl is-active -q "$1" 2>/dev/null; }
