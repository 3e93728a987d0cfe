# Sourced by build.sh and build-components.sh: is a cached guest built from these very sources?
# By content, not mtime: a fresh clone's files are all newer than the cache (every guest rebuilt,
# componentize-py ~30 s each), and two checkouts sharing the cache would each take the other's
# build for their own when only mtimes are compared.

sources_hash() { # sources_hash SOURCE...: one hash of the sources' contents, in order
  cat "$@" | sha256sum | cut -c1-64
}

stale() { # stale TARGET SOURCE...: true unless TARGET exists and TARGET.src names these sources
  local target="$1"; shift
  local want
  want="$(sources_hash "$@")"
  [[ -f "$target" && -f "$target.src" && "$want" == "$(cat "$target.src")" ]] && return 1
  # What `stamp` records once the build succeeds; named per build, as checkouts sharing the cache
  # may build the same guest at once (a shared name was moved away under the other build).
  echo "$want" >"$target.src.new.$$"
}

stamp() { # stamp TARGET: TARGET was just built from the sources `stale` was asked about
  mv -f "$1.src.new.$$" "$1.src"
}
