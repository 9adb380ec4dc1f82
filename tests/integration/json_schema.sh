# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# json_schema_check WHAT SCHEMA_FILE JSON: the shape of JSON against a schema
# file, one assertion per difference. The shape is every path (array
# elements as [], joined with .) with the JSON type found there. A schema
# line is "PATH TYPES [optional]", TYPES one or more of object array string
# number boolean null joined by |; # starts a comment. Every path of JSON
# must be in the schema with a listed type (no undocumented or retyped
# field), and every path not marked optional must be in JSON (none
# dropped). A path marked opaque is checked, what is below it is not.
# Needs jq and lib.sh's pass/fail.

json_shape() {
        jq -r '[paths as $p | {k: ($p | map(if type == "number" then "[]" else . end) | join(".")),
                                 t: (getpath($p) | type)}]
               | group_by(.k) | .[] | "\(.[0].k | gsub("\\.\\[\\]"; "[]")) \(map(.t) | unique | join("|"))"'
}

# below_opaque PATH: PATH is inside an opaque path of the caller's schema.
below_opaque() {
        local o
        for o in "${!opaque[@]}"; do
                case $1 in
                "$o."* | "$o[]"*) return 0 ;;
                esac
        done
        return 1
}

json_schema_check() {
        local what=$1 schema=$2 json=$3 path types opt t bad=0
        local -A allowed=() required=() seen=() opaque=()
        while read -r path types opt; do
                [ -n "$path" ] && [ "${path:0:1}" != "#" ] || continue
                allowed[$path]=$types
                [ "$opt" = optional ] || required[$path]=1
                [ "$opt" != opaque ] || opaque[$path]=1
        done <"$schema"
        while read -r path types; do
                [ -n "$path" ] || continue
                seen[$path]=1
                if below_opaque "$path"; then
                        continue
                fi
                if [ -z "${allowed[$path]:-}" ]; then
                        fail "$what: $path ($types) is not in $(basename "$schema")"
                        bad=1
                        continue
                fi
                for t in ${types//|/ }; do
                        if [[ "|${allowed[$path]}|" != *"|$t|"* ]]; then
                                fail "$what: $path is $t, $(basename "$schema") says ${allowed[$path]}"
                                bad=1
                        fi
                done
        done < <(printf '%s' "$json" | json_shape)
        for path in "${!required[@]}"; do
                if [ -z "${seen[$path]:-}" ]; then
                        fail "$what: $path of $(basename "$schema") is missing"
                        bad=1
                fi
        done
        [ "$bad" = 1 ] || pass "$what: the keys and types of $(basename "$schema")"
}
