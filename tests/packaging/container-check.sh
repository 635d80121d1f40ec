#!/usr/bin/env bash
# Packaging check, run by a developer on this machine kind (not in CI: about 30 minutes on two
# cores; needs root, Debian's docker.io and network access to the package registries). It runs
# the production path as a host would: the image build (and a rebuild after a code-only
# change), then, in a fresh clone owned by a non-root user with ../shared beside it, README's
# set-up as that owner (refused without the docker group, an offline dry run with a local
# model, the scheduled job's command with README's docker-compose.override.yml, a root-written
# .env refused with exit 78), the compose job (dry run, a forced deploy, two runs at once, a
# host run against a held lock, peak memory at chronos-bolt-small size; `git status` clean
# after all of it) and the schedule (systemd timer and units, the dead-man check and alert units).
#
# Prints one line per check, `PASS name detail` or `FAIL name detail` (`SKIP` for what this
# host cannot try), and exits 1 if any check failed.
#
# Usage: sudo tests/packaging/container-check.sh (checks the committed HEAD of this checkout)
# Environment: CHECK_UID (owner of the clone, default 1000; a user is created if none has it),
#   CHECK_WORK (scratch directory, default /tmp/model-optimizer-check, emptied first),
#   COMPOSE (the compose that runs the job checks: docker-compose, the v1 that Debian ships, by
#   default; v2 for `docker compose`; the compose file is checked with both either way),
#   CLEAN=1 (build the image without the layer cache), CARGO_TARGET_DIR (host build of the
#   checkpoint writer, default ~/.cache/model-optimizer/target as in .ci/run),
#   MODEL_OPTIMIZER_SHARED (default ../shared beside the checkout).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=$(cd "${MODEL_OPTIMIZER_SHARED:-$REPO/../shared}" && pwd)
WORK=${CHECK_WORK:-/tmp/model-optimizer-check}
OWNER_UID=${CHECK_UID:-1000}
read -r -a COMPOSE <<< "${COMPOSE:-docker-compose}"
export COMPOSE_PROJECT_NAME=model-optimizer-check
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/model-optimizer/target}
IMAGE=model-optimizer:latest
FAILED=0

pass() { echo "PASS $1 ${*:2}"; }
fail() { echo "FAIL $1 ${*:2}"; FAILED=1; }
skip() { echo "SKIP $1 ${*:2}"; }
# `CONDITION; verdict $? name detail`: PASS when the condition succeeded. ($? goes first: a
# command substitution in the detail would overwrite it.)
verdict() { local ok=$1; shift; if [ "$ok" = 0 ]; then pass "$@"; else fail "$@"; fi; }
log() { echo "$WORK/logs/$1.log"; }
# The crates a build log says it compiled (cargo's colour codes removed), one per line.
compiled_crates() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o 'Compiling [^ ]*' | cut -d' ' -f2; }
# Docker builds share the two cores with other work: lowest CPU priority on both sides.
nice_build() { nice -n 19 "$DOCKER" build --cpu-shares 128 "$@"; }

[ "$(id -u)" = 0 ] || { echo "run as root (it installs packages, starts dockerd, creates a user)" >&2; exit 2; }
case $WORK in /tmp/?*|/var/tmp/?*) ;; *) echo "CHECK_WORK must be under /tmp or /var/tmp: it is emptied first" >&2; exit 2;; esac
rm -rf "$WORK" && mkdir -p "$WORK/logs"

# --- engine and base images -------------------------------------------------------------------
if bash "$SHARED/tools/container-base-images.sh" > "$(log base-images)" 2>&1; then
    pass base-images "$(tail -2 "$(log base-images)" | tr '\n' ' ')"
else
    fail base-images "see $(log base-images)"; exit 1
fi
# Debian's client, named explicitly: another docker CLI on PATH may need buildx to build.
DOCKER=/usr/bin/docker
command -v systemd-analyze > /dev/null || apt-get install -y -qq systemd > /dev/null

# --- the fresh clone, owned by a non-root user ------------------------------------------------
OWNER=$(getent passwd "$OWNER_UID" | cut -d: -f1)
[ -n "$OWNER" ] || { useradd --create-home --uid "$OWNER_UID" mocheck && OWNER=mocheck; }
OWNER_GID=$(id -g "$OWNER")
OWNER_HOME=$(getent passwd "$OWNER" | cut -d: -f6)
as_owner() { runuser -u "$OWNER" -- env HOME="$OWNER_HOME" "$@"; }
CLONE=$WORK/model-optimizer
SHA=$(git -C "$REPO" rev-parse HEAD)
# --no-local: a local clone hard-links the objects, and the chown below would reach the original.
git clone -q --no-local "$REPO" "$CLONE" && git -C "$CLONE" checkout -q -B packaging-check "$SHA"
ln -s "$SHARED" "$WORK/shared"
chown -R "$OWNER_UID:$OWNER_GID" "$CLONE"
cd "$CLONE" || exit 1
# What README.md tells the owner to do once.
as_owner sh -c 'printf "UID=%s\nGID=%s\n" "$(id -u)" "$(id -g)" > .env'
compose() { "${COMPOSE[@]}" "$@"; }
compose_run() { compose run --rm -T "$@"; }

# --- image build, timed -----------------------------------------------------------------------
start=$(date +%s)
if nice_build ${CLEAN:+--no-cache} -f Dockerfile.optimizer -t "$IMAGE" . > "$(log build)" 2>&1; then
    secs=$(( $(date +%s) - start ))
    compiled=$(compiled_crates "$(log build)" | wc -l)
    size=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
    pass image-build "${secs}s, $compiled crates compiled, image $(( size / 1000000 )) MB"
else
    fail image-build "see $(log build)"; exit 1
fi
# A change to a source file alone rebuilds only the crate itself.
REB=$WORK/rebuild
# A copy with the clone's file modes: the builder's cache key covers a copied file's mode.
mkdir -p "$REB" && cp -a "$CLONE"/{Cargo.toml,Cargo.lock,crates,src,Dockerfile.optimizer,.dockerignore} "$REB/"
# Different each time: the builder keeps the layers of an earlier check's rebuild.
echo "// packaging check $(date +%s%N): a code-only change" >> "$REB/src/main.rs"
start=$(date +%s)
if nice_build -f "$REB/Dockerfile.optimizer" -t model-optimizer:rebuild-check "$REB" > "$(log rebuild)" 2>&1; then
    secs=$(( $(date +%s) - start ))
    compiled=$(compiled_crates "$(log rebuild)" | tr '\n' ' ')
    [ "$compiled" = "model-optimizer " ]; verdict $? image-rebuild "${secs}s after a src-only change, compiled: ${compiled:-nothing}"
else
    fail image-rebuild "see $(log rebuild)"
fi
"$DOCKER" image rm -f model-optimizer:rebuild-check > /dev/null 2>&1
volumes=$("$DOCKER" image inspect -f '{{json .Config.Volumes}}' "$IMAGE")
[ "$volumes" = null ]; verdict $? image-volumes "VOLUME entries: $volumes"
fonts=$("$DOCKER" run --rm --entrypoint sh "$IMAGE" -c 'ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf' 2>&1)
[ "$fonts" = /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; verdict $? image-font "$fonts"

# --- compose file: both compose versions, and the message without .env -----------------------
# v2 where this engine has none: Debian trixie's docker-compose package (2.x, a static binary)
# unpacked as a CLI plugin into a scratch DOCKER_CONFIG, leaving the host's v1 in place.
if "$DOCKER" compose version > /dev/null 2>&1; then
    V2=("$DOCKER" compose)
else
    V2DIR=$WORK/compose-v2
    mkdir -p "$V2DIR/lists/partial" "$V2DIR/docker-config/cli-plugins"
    echo 'deb http://deb.debian.org/debian trixie main' > "$V2DIR/sources.list"
    APT=(-o Dir::Etc::SourceList="$V2DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$V2DIR/lists")
    if apt-get "${APT[@]}" update -qq > "$(log compose-v2)" 2>&1 &&
        (cd "$V2DIR" && apt-get "${APT[@]}" download docker-compose >> "$(log compose-v2)" 2>&1) &&
        dpkg-deb -x "$V2DIR"/docker-compose_2*.deb "$V2DIR/root" &&
        cp "$V2DIR/root/usr/libexec/docker/cli-plugins/docker-compose" "$V2DIR/docker-config/cli-plugins/"; then
        V2=(env DOCKER_CONFIG="$V2DIR/docker-config" "$DOCKER" compose)
    else
        V2=()
    fi
fi
for v in v1 v2; do
    if [ "$v" = v1 ]; then C=(docker-compose); else C=("${V2[@]}"); fi
    if [ ${#C[@]} = 0 ]; then skip "compose-$v" "no docker compose v2 (see $(log compose-v2))"; continue; fi
    "${C[@]}" config -q > "$(log "compose-$v-config")" 2>&1
    verdict $? "compose-$v-config" "$("${C[@]}" version 2>&1 | head -1)"
    mv .env .env.saved
    msg=$("${C[@]}" config -q 2>&1); rc=$?
    mv .env.saved .env
    [ "$rc" != 0 ] && grep -q "write .env" <<< "$msg"; verdict $? "compose-$v-missing-env" "exit $rc: $msg"
done
if [ "${COMPOSE[*]}" = v2 ]; then COMPOSE=("${V2[@]}"); fi
hf=$(compose_run --entrypoint sh model-optimizer -c 'id -u; touch "$HF_HOME/.write-check" && rm "$HF_HOME/.write-check" && echo writable' 2> "$(log hf-cache)" | tr '\n' ' ')
[ "$hf" = "$OWNER_UID writable " ]; verdict $? hf-cache-writable "uid and result: $hf"

# The owner's own git, run as the owner: no ownership complaint, and the output.
owner_git() { as_owner git -C "$CLONE" "$@"; }
not_owned() { find "$CLONE" ! -uid "$OWNER_UID" -print | head -5 | tr '\n' ' '; }
# `run` exits 0 when every horizon reached its decision, a rejection included.
decided() { [ "$1" = 0 ]; }
DEMO=/models/demo-bolt-tiny
DEMO_MOUNT=(-v "$WORK/shared/models/demo-bolt-tiny:$DEMO:ro")

# --- dry run, with each compose: decisions for every horizon, nothing written ----------------
for v in v1 v2; do
    if [ "$v" = v1 ]; then C=(docker-compose); else C=("${V2[@]}"); fi
    [ ${#C[@]} = 0 ] && continue
    "${C[@]}" run --rm -T "${DEMO_MOUNT[@]}" model-optimizer run --all --dry-run --model "$DEMO" > "$(log "dry-run-$v")" 2>&1; rc=$?
    changes=$(owner_git status --porcelain --ignored 2>&1 | grep -v '^!! .env$' | tr '\n' ' ')
    decided "$rc" && [ -z "$changes" ]; verdict $? "compose-$v-dry-run" "exit $rc, files changed: ${changes:-none}"
done

# --- README's set-up as the owner: the docker group, an offline dry run, a local model --------
# Exactly what README tells the owner, run as the owner (not root) and offline (HF_HUB_OFFLINE=1:
# a hub download would fail), from the checkout.
owner_compose() { as_owner env HF_HUB_OFFLINE=1 "${COMPOSE[@]}" "$@"; }
ADDED_TO_DOCKER=0
if id -nG "$OWNER" | tr ' ' '\n' | grep -qx docker; then
    skip owner-without-docker-group "$OWNER is already in the docker group"
else
    msg=$(owner_compose run --rm -T model-optimizer --version 2>&1); rc=$?
    [ "$rc" != 0 ] && grep -qi "permission denied" <<< "$msg"
    verdict $? owner-without-docker-group "exit $rc, as README warns: $(tail -1 <<< "$msg")"
    usermod -aG docker "$OWNER" && ADDED_TO_DOCKER=1
fi
owner_compose run --rm -T -v "$PWD/../shared/models/demo-bolt-tiny:/models/demo-bolt-tiny:ro" \
    model-optimizer run --all --dry-run --model /models/demo-bolt-tiny > "$(log readme-dry-run)" 2>&1; rc=$?
changes=$(owner_git status --porcelain --ignored 2>&1 | grep -v '^!! .env$' | tr '\n' ' ')
decided "$rc" && [ -z "$changes" ]; verdict $? readme-offline-dry-run "exit $rc as $OWNER, files changed: ${changes:-none}"
# A .env written by root (UID=0): refused before anything changes, naming the fix.
cp .env "$WORK/env.saved" && printf 'UID=0\nGID=0\n' > .env
msg=$(compose_run model-optimizer run --all --dry-run 2>&1); rc=$?
cp "$WORK/env.saved" .env && chown "$OWNER_UID:$OWNER_GID" .env
status=$(owner_git status --porcelain 2>&1 | tr '\n' ' ')
[ "$rc" = 78 ] && grep -q "UID=$OWNER_UID" <<< "$msg" && grep -q chown <<< "$msg" && [ -z "$status" ] && [ -z "$(not_owned)" ]
# The product's error line: compose v1 prints the container's exit code after it on stderr.
verdict $? root-env-refused "exit $rc: $(grep -m1 '^error:' <<< "$msg" || tail -1 <<< "$msg"); git status: ${status:-clean}"

# --- forced 7d deploy through compose ----------------------------------------------------------
# Validation thresholds wide open and no live trial, so that the forced search's candidate is
# deployed whatever the demo model scores: this checks the deploy path, not the model.
OPEN=(-e MODEL_OPTIMIZER_VALIDATION_MIN_RMSE_IMPROVEMENT_PCT=-100
      -e MODEL_OPTIMIZER_VALIDATION_MIN_MAPE_IMPROVEMENT_PCT=-100
      -e MODEL_OPTIMIZER_VALIDATION_MAX_STD_INCREASE_PCT=10000
      -e MODEL_OPTIMIZER_VALIDATION_MAX_INFERENCE_TIME_INCREASE_PCT=10000
      -e MODEL_OPTIMIZER_VALIDATION_MIN_COVERAGE_95=0
      -e MODEL_OPTIMIZER_VALIDATION_MAX_ABS_BIAS=1000000
      -e MODEL_OPTIMIZER_VALIDATION_REQUIRE_DM_SIGNIFICANCE=false
      -e MODEL_OPTIMIZER_VALIDATION_MAX_INTERVAL_SCORE_INCREASE_PCT=10000
      -e MODEL_OPTIMIZER_DEPLOY_TRIAL_MIN_ORIGINS=0)
# A current 7d config outside the search grid, committed by the owner, so the deploy changes it.
as_owner sh -c 'sed -i "s/\"context_length\": [0-9]*/\"context_length\": 120/; s/\"num_samples\": [0-9]*/\"num_samples\": 75/" configs/chronos_7d.json'
owner_git -c user.name=Owner -c user.email=owner@example.com commit -q -am "packaging check: a 7d config outside the grid"
before_head=$(owner_git rev-parse HEAD)
before_cfg=$(sha256sum configs/chronos_7d.json)
compose_run "${DEMO_MOUNT[@]}" "${OPEN[@]}" model-optimizer run --horizon 7d --force --model "$DEMO" > "$(log deploy)" 2>&1; rc=$?
[ "$rc" = 0 ]; verdict $? deploy-exit "exit $rc"
[ "$(sha256sum configs/chronos_7d.json)" != "$before_cfg" ]
verdict $? deploy-config-replaced "$(grep -E '"(context_length|num_samples|temperature)"' configs/chronos_7d.json | tr -d ' \n')"
backups=$(ls configs/backups/chronos_7d_*.json 2>/dev/null | wc -l)
[ "$backups" = 1 ]; verdict $? deploy-backup "$backups backup(s) of 7d"
hist=$(compose_run model-optimizer --json history --horizon 7d --limit 1 2> "$(log history)")
row=$(printf %s "$hist" | jq -c '(if type == "array" then . else (.records // .rows // .history) end) | .[0] | {horizon, action, success}' 2>&1)
jq -e '.horizon == "7d" and .action == "deployed" and .success' <<< "$row" > /dev/null; verdict $? deploy-history "newest 7d row: $row"
# The metrics file the deploy wrote, as node_exporter's textfile collector would read it.
prom=$(grep -E '^model_optimizer_(last_run_exit_code|deploys_total\{horizon="7d"\}) ' reports/model-optimizer.prom 2>&1 | tr '\n' ' ')
[ "$prom" = 'model_optimizer_last_run_exit_code 0 model_optimizer_deploys_total{horizon="7d"} 1 ' ]
verdict $? deploy-metrics "reports/model-optimizer.prom: ${prom:-missing}"
compose_run "${DEMO_MOUNT[@]}" model-optimizer status --check --model "$DEMO" > "$(log status-check)" 2>&1; rc=$?
age=$(grep -o 'last completed weekly run [0-9.]* days ago' "$(log status-check)")
[ "$rc" = 0 ] && [ -n "$age" ]; verdict $? dead-man-check "status --check exit $rc: ${age:-no age named}"
png=$(find reports -name 7d.png 2>/dev/null | head -1)
png_size=$(stat -c %s "$png" 2>/dev/null || echo 0)
nofont=$(grep -c 'no font found' "$(log deploy)")
# The output names the picture relative to the root, not by its container path.
container_paths=$(grep -c '/app/reports' "$(log deploy)")
[ "$png_size" -gt 0 ] && [ "$nofont" = 0 ] && [ "$container_paths" = 0 ]
verdict $? deploy-png "${png:-no reports/*/7d.png}: $png_size bytes, 'no font' warnings: $nofont, /app/reports in the output: $container_paths"
# The image draws text: the same validation picture drawn with the image's fonts and with the
# fonts hidden under an empty tmpfs; the one with title, axis labels and legend is larger.
plot_size() {
    "$DOCKER" run --rm -u "$OWNER_UID:$OWNER_GID" -v "$CLONE:/app" "${DEMO_MOUNT[@]}" "$@" --entrypoint sh "$IMAGE" -c \
        "model-optimizer --root /app validate --horizon 7d --candidate configs/chronos_7d.json --plot /tmp/p --model $DEMO > /dev/null 2>&1; stat -c %s /tmp/p/*/7d.png" 2>/dev/null || echo 0
}
with_fonts=$(plot_size); without_fonts=$(plot_size --tmpfs /usr/share/fonts)
[ "$without_fonts" -gt 0 ] && [ "$with_fonts" -gt "$without_fonts" ]
verdict $? png-text "validation picture $with_fonts bytes with the image's fonts, $without_fonts without"
log_out=$(owner_git log --format=%s "$before_head..HEAD" 2>&1)
files=$(owner_git log --format= --name-only "$before_head..HEAD" 2>&1 | sort -u | tr '\n' ' ')
commits=$(printf '%s\n' "$log_out" | grep -c .)
[ "$commits" = 1 ] && [ "$files" = "configs/chronos_7d.json " ] && ! grep -q dubious <<< "$log_out"
verdict $? deploy-commit "$commits commit(s) touching: $files(git log as $OWNER)"
owner_status=$(owner_git status --porcelain 2>&1 | tr '\n' ' ')
[ -z "$owner_status" ]; verdict $? owner-git "git status as $OWNER after the runs: ${owner_status:-clean}"
stray=$(not_owned)
[ -z "$stray" ]; verdict $? ownership "files in the clone not owned by $OWNER: ${stray:-none}"

# --- peak memory at chronos-bolt-small size, and one run at a time -----------------------------
# A forced `run --all` on random weights with chronos-bolt-small's shapes, under the compose
# limits; its container's cgroup reports the peak. While it holds the run lock, a second compose
# run and a host run of the image's binary (as the owner) must both exit 75.
SMALL=$WORK/bolt-small-random
LOCK=$CLONE/.model-optimizer.lock
# The run lock is held on the root directory itself; the lock file only names the holder.
held() { [ -e "$LOCK" ] && grep -q ":$(stat -c %i "$CLONE") " /proc/locks; }
"$DOCKER" create --name model-optimizer-check-bin "$IMAGE" > /dev/null &&
    "$DOCKER" cp model-optimizer-check-bin:/usr/local/bin/model-optimizer "$WORK/model-optimizer-bin"
"$DOCKER" rm model-optimizer-check-bin > /dev/null 2>&1
# With the features .ci/run builds, so that its cached library is reused.
if (cd "$REPO" && nice cargo run -q --features failpoints --example write-checkpoint -- "$SMALL" small) > "$(log checkpoint)" 2>&1; then
    compose_run -v "$SMALL:/models/bolt-small-random:ro" --entrypoint sh model-optimizer -c '
        model-optimizer --root /app run --all --force --model /models/bolt-small-random; rc=$?
        cg=/sys/fs/cgroup
        if [ -r $cg/memory.peak ]; then echo "limit $(cat $cg/memory.max) peak $(cat $cg/memory.peak)"
        else echo "limit $(cat $cg/memory/memory.limit_in_bytes) peak $(cat $cg/memory/memory.max_usage_in_bytes)"; fi
        exit $rc' > "$(log memory)" 2>&1 &
    holder=$!
    for _ in $(seq 1 300); do held && break; sleep 0.2; done
    if held; then
        cid=$("$DOCKER" ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | head -1)
        limits=$("$DOCKER" inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.Config.User}}' "$cid" 2>&1)
        [ "$limits" = "1073741824 2000000000 $OWNER_UID:$OWNER_GID" ]; verdict $? compose-limits "memory, nano-CPUs, user: $limits"
        compose_run "${DEMO_MOUNT[@]}" model-optimizer run --all --model "$DEMO" > "$(log second)" 2>&1; rc=$?
        [ "$rc" = 75 ]; verdict $? lock-second-compose-run "exit $rc while another compose run holds the lock"
        as_owner "$WORK/model-optimizer-bin" --root "$CLONE" run --all --model "$WORK/shared/models/demo-bolt-tiny" > "$(log host)" 2>&1; rc=$?
        [ "$rc" = 75 ] && grep -q "on host " "$(log host)"; verdict $? lock-host-run "exit $rc from the host binary (as $OWNER) while a compose run holds the lock"
        held; verdict $? lock-still-held "by the first run after both attempts"
    else
        fail lock-taken "the run never held $LOCK (see $(log memory))"
    fi
    wait "$holder"; rc=$?
    read -r _ limit _ peak <<< "$(grep '^limit ' "$(log memory)")"
    decided "$rc" && [ "${limit:-0}" = 1073741824 ] && [ "${peak:-0}" -gt 0 ] && [ "$peak" -lt "$limit" ]
    verdict $? memory-peak "run --all --force exit $rc, cgroup peak $(( ${peak:-0} / 1048576 )) MiB of $(( ${limit:-0} / 1048576 )) MiB"
else
    fail memory-peak "the checkpoint writer failed: see $(log checkpoint)"
fi
stray=$(not_owned)
[ -z "$stray" ]; verdict $? ownership-after-runs "files in the clone not owned by $OWNER: ${stray:-none}"

# --- README's docker-compose.override.yml with a local model, as the owner, offline ----------
# The scheduled job's own command (no --model) runs on the override's model; afterwards, and
# after every run above, the owner's `git status` is clean: the job's state is ignored.
# The override README shows, with a local model: the scheduled job's own command uses it.
as_owner sh -c "printf '%s\n' 'services:' '  model-optimizer:' '    volumes:' \
    '      - $WORK/shared/models/demo-bolt-tiny:/models/local:ro' '    environment:' \
    '      - MODEL_OPTIMIZER_MODEL_ID=/models/local' > docker-compose.override.yml"
owner_compose run --rm -T model-optimizer run --all > "$(log readme-override-run)" 2>&1; rc=$?
model=$(grep -o '^run .*   model [^ ]*' "$(log readme-override-run)" | head -1 | grep -o 'model [^ ]*$')
status=$(owner_git status --porcelain 2>&1 | tr '\n' ' ')
decided "$rc" && [ "$model" = "model /models/local" ] && [ -z "$status" ]
verdict $? readme-override-run "exit $rc, $model, git status as $OWNER: ${status:-clean}"
rm -f docker-compose.override.yml
stray=$(not_owned)
[ -z "$stray" ]; verdict $? ownership-after-override "files in the clone not owned by $OWNER: ${stray:-none}"
[ "$ADDED_TO_DOCKER" = 1 ] && gpasswd -d "$OWNER" docker > /dev/null

# --- the schedule ------------------------------------------------------------------------------
# The timer's own OnCalendar, across Chile's April and September 2026 changes: every elapse is
# Sunday 02:00 Santiago time, with both offsets on each side.
cal=$(sed -n 's/^OnCalendar=//p' "$CLONE/cron/model-optimizer.timer")
for change in 'april:2026-03-20 00:00:00 UTC' 'september:2026-08-25 00:00:00 UTC'; do
    base=${change#*:}
    elapses=$(TZ=UTC systemd-analyze calendar --iterations=3 --base-time="$base" "$cal" 2>&1 \
        | sed -n 's/^ *\(Next elapse\|Iter\. #[0-9]*\): //p')
    local_times=$(printf '%s\n' "$elapses" | while read -r t; do TZ=America/Santiago date -d "$t" '+%F %a %H:%M %z'; done | tr '\n' ',')
    [ "$(tr , '\n' <<< "$local_times" | grep -c ' Sun 02:00 ')" = 3 ] && grep -q -- -0300 <<< "$local_times" && grep -q -- -0400 <<< "$local_times"
    verdict $? "systemd-calendar-${change%%:*}" "$local_times"
done
verify=$(systemd-analyze verify "$CLONE"/cron/model-optimizer{,-check}.{service,timer} \
    "$CLONE/cron/model-optimizer-failure@.service" 2>&1); rc=$?
[ "$rc" = 0 ] && [ -z "$verify" ]; verdict $? systemd-verify "exit $rc, ${verify:-no warnings}"

# The cron entry's command as cron runs it (\% becomes %), pointed at the clone, with `date`
# and `docker-compose` stood in for: it goes on only when the guard reads 702, and then runs
# the job command in the checkout.
entry=$(grep -E '^[0-9*]' "$CLONE/cron/model-optimizer.cron" | head -1)
cmd=$(cut -d' ' -f7- <<< "$entry" | sed -e 's/\\%/%/g' -e "s#/opt/model-optimizer#$CLONE#g" -e "s#/var/log/model-optimizer.log#$WORK/logs/cron-entry.log#")
FAKE=$WORK/fake-bin
mkdir -p "$FAKE"
printf '#!/bin/sh\necho "$PWD $*" >> %s\n' "$WORK/cron-compose-calls" > "$FAKE/docker-compose"
for guard in 701 702; do
    printf '#!/bin/sh\necho %s\n' "$guard" > "$FAKE/date"
    chmod +x "$FAKE/date" "$FAKE/docker-compose"
    PATH=$FAKE:$PATH sh -c "$cmd"
done
calls=$(cat "$WORK/cron-compose-calls" 2>/dev/null)
[ "$calls" = "$CLONE run --rm -T model-optimizer run --all" ]
verdict $? cron-entry "user $(awk '{print $6}' <<< "$entry"), compose calls with the guard at 701 then 702: ${calls:-none}"

"$DOCKER" volume rm "${COMPOSE_PROJECT_NAME}_hf-cache" > /dev/null 2>&1
echo "logs and the clone: $WORK"
exit "$FAILED"
