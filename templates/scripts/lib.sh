# kubestrap remote helpers. Output protocol, one per line:
#   CHANGED <what>   this run changed <what> on the host
#   OK <what>        <what> was already as wanted
#   FACT <k>=<v>     a fact for the console
#   FAIL <message>   (stderr) the step failed; the script exits 1
set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "FAIL $*" >&2; exit 1; }
changed() { echo "CHANGED $*"; }
ok() { echo "OK $*"; }
# put PATH MODE < content: write PATH only when its content differs; returns 0 when it changed.
put() {
  _p=$1; _m=$2; _d=$(dirname "$_p"); mkdir -p "$_d" || fail "cannot create $_d"
  _t=$(mktemp "$_d/.kubestrap.XXXXXX") || fail "cannot write in $_d"
  cat > "$_t"
  if [ -f "$_p" ] && cmp -s "$_t" "$_p"; then
    rm -f "$_t"; chmod "$_m" "$_p"; ok "$_p"; return 1
  fi
  chmod "$_m" "$_t" && mv -f "$_t" "$_p" || fail "cannot write $_p"
  changed "$_p"; return 0
}
apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold "$@"; }
