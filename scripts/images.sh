#!/usr/bin/env bash
# scripts/images.sh -- build, inspect and test the service images with podman (no Docker engine).
#
#   images.sh build [IMAGE...]   build every image (or the named ones) from ./Dockerfile, tagged
#                                with the git revision; prints each image's size
#   images.sh sbom [IMAGE...]    a CycloneDX SBOM per image (Python packages and Debian packages)
#                                into $JM_IMAGES_OUT (default build/images/)
#   images.sh test [PYTEST_ARGS] start each image as deploy/k8s does, against the local
#                                infrastructure (tests/images)
#   images.sh tag                print the tag `build` gives
#   images.sh podman ARGS...     podman with the settings this machine needs (inspect, run, ...)
#
# Base images cannot be pulled here: the base (Debian bookworm's python3, made by mmdebstrap
# from Debian's packages) and uv (the PyPI wheel's binary) are made once into the cache and
# imported into podman's store. Outside, build with plain `docker build` (see the Dockerfile).
#
# Environment:
#   JM_CACHE_DIR   cache (default ${XDG_CACHE_HOME:-~/.cache}/junipermarket)
#   JM_IMAGE_TAG   tag to build or test (default: the git revision, `-dirty` with local changes)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly IMAGES=(orders invoicing payments notifications console card-sandbox)
readonly UV_VERSION=0.13.8
readonly CYCLONEDX_VERSION=7.5.0
# Bump the suffix when the base recipe below changes: the cache and the store key on it.
readonly BASE_IMAGE=localhost/junipermarket/base:bookworm-python3.11-2
readonly UV_IMAGE=localhost/junipermarket/uv:$UV_VERSION
CACHE_DIR=${JM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/junipermarket}/images
readonly CACHE_DIR
OUT_DIR=${JM_IMAGES_OUT:-$REPO/build/images}
readonly OUT_DIR

die() {
  printf 'images: %s\n' "$*" >&2
  exit 1
}

# What this machine needs to run containers (../shared/design/LOCAL_INFRA.md): no default ulimits
# (setrlimit is not permitted here), runc (crun refuses hybrid cgroups) and cgroupfs.
pm() {
  CONTAINERS_CONF=$CACHE_DIR/containers.conf podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs "$@"
}

service_of() { # image -> workspace package suffix whose venv it carries
  case $1 in
    orders | invoicing | payments | notifications | console | card-sandbox) echo "$1" ;;
    *) die "unknown image '$1' (one of: ${IMAGES[*]})" ;;
  esac
}

image_tag() {
  if [[ -n ${JM_IMAGE_TAG:-} ]]; then
    echo "$JM_IMAGE_TAG"
    return
  fi
  local rev
  rev=$(git -C "$REPO" rev-parse --short=12 HEAD)
  if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then rev+=-dirty; fi
  echo "$rev"
}

install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  [[ -x /usr/sbin/runc ]] || missing+=(runc)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  ((${#missing[@]} == 0)) && return
  echo "images: installing ${missing[*]} (apt)" >&2
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed"
}

prepare() {
  install_tools
  mkdir -p "$CACHE_DIR"
  # Concurrent callers make the base once: the second waits for the first.
  exec 8>"$CACHE_DIR/.prepare.lock"
  flock -w 900 8 || die "timed out waiting for another preparation"
  printf '[containers]\ndefault_ulimits = []\n' >"$CACHE_DIR/containers.conf"
  local base_tar=$CACHE_DIR/${BASE_IMAGE##*:}.tar
  if [[ ! -f $base_tar ]]; then
    echo "images: making the base from Debian's packages (once, 1-2 min)" >&2
    # Like python:3.11-slim: the interpreter and CA certificates; no docs, man pages or apt lists,
    # and no perl (about 50 MB that only usrmerge needs, while the image is merged already).
    mmdebstrap --quiet --format=tar --variant=minbase --include=python3,ca-certificates,usr-is-merged \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='chroot "$1" dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl libperl5.36 perl-modules-5.36 libgdbm-compat4 >/dev/null' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
      bookworm "$base_tar.part" >&2 || die "mmdebstrap failed"
    mv "$base_tar.part" "$base_tar"
  fi
  if ! pm image exists "$BASE_IMAGE"; then
    pm import --quiet "$base_tar" "$BASE_IMAGE" >/dev/null || die "podman import of the base failed"
  fi
  local uv_tar=$CACHE_DIR/uv-$UV_VERSION.tar
  if [[ ! -f $uv_tar ]]; then
    echo "images: fetching uv $UV_VERSION from PyPI (once)" >&2
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
      -d "$tmp" "uv==$UV_VERSION" >&2 || die "pip download uv==$UV_VERSION failed"
    (cd "$tmp" && python3 -m zipfile -e uv-*.whl wheel && install -m 0755 wheel/uv-*.data/scripts/uv ./uv &&
      tar -cf "$uv_tar.part" uv) || die "unpacking the uv wheel failed"
    rm -rf "$tmp"
    mv "$uv_tar.part" "$uv_tar"
  fi
  if ! pm image exists "$UV_IMAGE"; then
    pm import --quiet "$uv_tar" "$UV_IMAGE" >/dev/null || die "podman import of uv failed"
  fi
  exec 8>&-
}

build() {
  local images=("$@") tag image started seconds all_started=$SECONDS
  ((${#images[@]})) || images=("${IMAGES[@]}")
  tag=$(image_tag)
  prepare
  mkdir -p "$OUT_DIR"
  # The machine's CA bundle for the package downloads (it may trust a proxy Debian's does not).
  local ca=() bundle=${SSL_CERT_FILE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
  if [[ -f $bundle ]]; then
    ca=(-v "$bundle:/run/build-ca.crt:ro" --build-arg SSL_CERT_FILE=/run/build-ca.crt)
  fi
  for image in "${images[@]}"; do
    started=$SECONDS
    # --format docker keeps HEALTHCHECK (OCI image configs have no field for it).
    pm build --quiet --layers --format docker --network host "${ca[@]}" -f "$REPO/Dockerfile" \
      --target "$image" --build-arg "SERVICE=$(service_of "$image")" \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "UV_IMAGE=$UV_IMAGE" \
      --label "org.opencontainers.image.revision=$(git -C "$REPO" rev-parse HEAD)" \
      --label "org.opencontainers.image.title=junipermarket/$image" \
      -t "junipermarket/$image:$tag" "$REPO" >"$OUT_DIR/$image.build.log" 2>&1 ||
      {
        tail -n 30 "$OUT_DIR/$image.build.log" >&2
        die "building $image failed (log: $OUT_DIR/$image.build.log)"
      }
    seconds=$((SECONDS - started))
    printf 'images: %-34s %4s MB  (%d s)\n' "junipermarket/$image:$tag" \
      "$(($(pm image inspect --format '{{.Size}}' "junipermarket/$image:$tag") / 1000000))" "$seconds"
  done
  echo "images: ${#images[@]} built in $((SECONDS - all_started)) s"
}

sbom() {
  local images=("$@") tag image mount tool=$CACHE_DIR/cyclonedx-bom-$CYCLONEDX_VERSION
  ((${#images[@]})) || images=("${IMAGES[@]}")
  tag=$(image_tag)
  prepare
  if [[ ! -f $tool/.complete ]]; then
    echo "images: installing cyclonedx-bom $CYCLONEDX_VERSION (PyPI, once)" >&2
    rm -rf "$tool"
    uv venv -q --python 3.11 "$tool" >&2 || die "creating the cyclonedx venv failed"
    VIRTUAL_ENV=$tool uv pip install -q "cyclonedx-bom==$CYCLONEDX_VERSION" >&2 ||
      die "installing cyclonedx-bom failed"
    touch "$tool/.complete"
  fi
  mkdir -p "$OUT_DIR"
  for image in "${images[@]}"; do
    pm image exists "junipermarket/$image:$tag" || die "junipermarket/$image:$tag not built (make images)"
    mount=$(pm image mount "junipermarket/$image:$tag")
    # cyclonedx-py reads the venv's package metadata; the Debian packages come from dpkg's status.
    "$tool/bin/cyclonedx-py" environment --output-reproducible --of JSON \
      -o "$OUT_DIR/$image.python.cdx.json" "$mount/app/.venv" ||
      {
        pm image unmount "junipermarket/$image:$tag" >/dev/null
        die "cyclonedx-py failed for $image"
      }
    "$tool/bin/python" "$REPO/scripts/sbom_merge.py" --image "junipermarket/$image:$tag" \
      --dpkg-status "$mount/var/lib/dpkg/status" "$OUT_DIR/$image.python.cdx.json" \
      >"$OUT_DIR/$image.cdx.json"
    rm -f "$OUT_DIR/$image.python.cdx.json"
    pm image unmount "junipermarket/$image:$tag" >/dev/null
    printf 'images: %-40s %s components\n' "$OUT_DIR/$image.cdx.json" \
      "$("$tool/bin/python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$OUT_DIR/$image.cdx.json")"
  done
}

run_tests() {
  local tag image
  tag=$(image_tag)
  prepare
  for image in "${IMAGES[@]}"; do
    pm image exists "junipermarket/$image:$tag" || die "junipermarket/$image:$tag not built (make images)"
  done
  # Containers a killed run of this checkout left behind would hold the manifests' ports.
  local stale
  stale=$(pm ps --all --quiet --filter "label=jm.test-images.repo=$REPO")
  # shellcheck disable=SC2086
  if [[ -n $stale ]]; then pm rm --force $stale >/dev/null; fi
  # The infrastructure the containers use; stop only what this run started (as scripts/test.sh).
  local started_file
  started_file=$(mktemp)
  # shellcheck disable=SC2064
  trap "stop_started '$started_file'" EXIT
  INFRA_STARTED_FILE=$started_file bash "$REPO/deploy/local/infra.sh" up kafka postgres ferretdb mailpit
  # The test's own Kafka clients log in as scripts/test.sh's do (juniper_testkit).
  export KAFKA_SECURITY_PROTOCOL=${KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT}
  export KAFKA_SASL_MECHANISM=${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}
  # Bounded: a hung container or broker fails the run instead of holding CI.
  local paths=(tests/images) arg
  for arg in "$@"; do [[ $arg == -* ]] || paths=(); done
  JM_IMAGE_TAG=$tag timeout --signal=INT --kill-after=30 600 \
    uv run --frozen pytest -p no:cacheprovider -s "${paths[@]}" "$@"
}

stop_started() {
  local started
  started=$(tr '\n' ' ' <"$1")
  if [[ -n ${started// /} ]]; then bash "$REPO/deploy/local/infra.sh" down $started; fi
  rm -f "$1"
}

main() {
  local command=${1:-}
  (($#)) && shift
  case $command in
    build) build "$@" ;;
    sbom) sbom "$@" ;;
    tag) image_tag ;;
    podman)
      prepare
      pm "$@"
      ;;
    test) run_tests "$@" ;;
    *) die "usage: images.sh build|sbom|test|tag|podman [...]" ;;
  esac
}

main "$@"
