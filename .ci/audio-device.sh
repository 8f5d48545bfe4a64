#!/usr/bin/env bash
# A real audio stack with no sound card: PipeWire + WirePlumber with one null
# "Audio/Duplex" node, so PortAudio streams run in real time and what is
# played comes back on capture (the recipe measured in shared/reference/AUDIO.md).
#
#   .ci/audio-device.sh start DIR   install (apt, if missing), start, write DIR/env
#   .ci/audio-device.sh stop DIR    stop what start started, by PID
#
# Everything lives under DIR (runtime dir, config, logs, PIDs): nothing in /etc
# or the user's session is touched. Source DIR/env (XDG_RUNTIME_DIR and the
# D-Bus address) to run PortAudio clients against it.
set -euo pipefail

cmd=${1:?usage: audio-device.sh start|stop DIR}
dir=${2:?usage: audio-device.sh start|stop DIR}

packages=(libportaudio2 pipewire pipewire-alsa wireplumber dbus-daemon)

install() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "audio-device: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

wait_for() {  # wait_for SECONDS COMMAND...: poll a readiness probe of an external daemon
    local limit=$1; shift
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
}

start() {
    install
    mkdir -p "$dir/run" "$dir/config/pipewire/pipewire.conf.d"
    chmod 0700 "$dir/run"
    cat >"$dir/config/pipewire/pipewire.conf.d/loopback.conf" <<'CONF'
context.objects = [
    { factory = adapter
      args = {
          factory.name     = support.null-audio-sink
          node.name        = "loopback"
          node.description = "dashscope_sync test loopback"
          media.class      = "Audio/Duplex"
          audio.position   = [ MONO ]
          audio.rate       = 48000
          object.linger    = true
      }
    }
]
CONF
    export XDG_RUNTIME_DIR="$dir/run" XDG_CONFIG_HOME="$dir/config"
    export DBUS_SESSION_BUS_ADDRESS="unix:path=$XDG_RUNTIME_DIR/bus"
    dbus-daemon --session --address="$DBUS_SESSION_BUS_ADDRESS" --fork --print-pid >"$dir/dbus.pid"
    pipewire >"$dir/pipewire.log" 2>&1 &
    echo $! >"$dir/pipewire.pid"
    wait_for 10 pw-cli info 0 || { echo "audio-device: pipewire did not start" >&2; cat "$dir/pipewire.log" >&2; return 1; }
    wireplumber >"$dir/wireplumber.log" 2>&1 &
    echo $! >"$dir/wireplumber.pid"
    wait_for 10 sh -c 'wpctl status | grep -q WirePlumber' \
        || { echo "audio-device: wireplumber did not start" >&2; cat "$dir/wireplumber.log" >&2; return 1; }
    cat >"$dir/env" <<ENV
export XDG_RUNTIME_DIR='$XDG_RUNTIME_DIR'
export DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS'
ENV
    echo "audio-device: PipeWire loopback ready (source $dir/env)" >&2
}

stop() {
    for name in wireplumber pipewire dbus; do
        if [ -f "$dir/$name.pid" ]; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
            rm -f "$dir/$name.pid"
        fi
    done
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) echo "usage: audio-device.sh start|stop DIR" >&2; exit 2 ;;
esac
