#!/usr/bin/env bash
# Mutation testing of the pure cores: apply each mutant of
# tests/mutation/mutants.txt in turn, rebuild the unit tests (gcc, Debug,
# build/mutation), run the unit label and see whether some test fails.
# A mutant no unit test notices has survived: the tests do not pin that
# behaviour down. Too slow for tests/run.sh; run it before a release.
#
#   tests/mutation/run.sh [--report-only] [--list FILE] [NAME-REGEX]
#
# Exit status: 0 when every mutant was killed (or with --report-only), 1
# when one survived, was stale (its text not found exactly once) or did
# not compile, 2 for a usage or setup error. Mutated sources are always
# restored, also on Ctrl-C; the script refuses to start when one of them
# has uncommitted changes, so that restoring cannot lose work.
set -euo pipefail
cd "$(dirname "$0")/../.."

report_only=false
list=tests/mutation/mutants.txt
filter=
while [ $# -gt 0 ]; do
        case $1 in
        --report-only) report_only=true ;;
        --list) list=$2; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) filter=$1 ;;
        esac
        shift
done

build=build/mutation
jobs=2   # builds and tests may share the machine

names=() files=() froms=() tos=()
while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        '@ '*) read -r _ n f <<<"$line"; names+=("$n"); files+=("$f") ;;
        '- '*) froms+=("${line:2}") ;;
        '+ '*) tos+=("${line:2}") ;;
        '#'*|'') ;;
        *) echo "run.sh: $list: cannot read line: $line" >&2; exit 2 ;;
        esac
done <"$list"
if [ ${#names[@]} -ne ${#froms[@]} ] || [ ${#names[@]} -ne ${#tos[@]} ]; then
        echo "run.sh: $list: every mutant needs one '@', one '-' and one '+' line" >&2
        exit 2
fi

mapfile -t mutated < <(printf '%s\n' "${files[@]}" | sort -u)
for f in "${mutated[@]}"; do
        [ -f "$f" ] || { echo "run.sh: $f: no such file" >&2; exit 2; }
done
if [ -n "$(git status --porcelain -- "${mutated[@]}")" ]; then
        echo "run.sh: uncommitted changes in files it mutates; commit or stash them first:" >&2
        git status --short -- "${mutated[@]}" >&2
        exit 2
fi

backup=$(mktemp -d)
current=
restore() {
        if [ -n "$current" ]; then
                # A plain copy, not cp -p: the new mtime makes make rebuild it.
                cp "$backup/orig" "$current"
                current=
        fi
}
cleanup() {
        restore
        rm -rf "$backup"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Replace the single occurrence of FROM in FILE by TO. Returns 1 when FROM
# occurs other than once.
apply() {
        FROM=$2 TO=$3 perl -0777 -i -e '
                my $s = do { local $/; <> };
                my $n = () = $s =~ /\Q$ENV{FROM}\E/g;
                if ($n != 1) { print $s; exit 1 }
                $s =~ s/\Q$ENV{FROM}\E/$ENV{TO}/;
                print $s;' "$1"
}

mapfile -t targets < <(ls tests/unit/test_*.c | sed 's|.*/||; s|\.c$||')

echo "== configuring $build (gcc, Debug)"
CC=gcc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DHAMGR_WERROR=OFF -DHAMGR_SANITIZE=OFF \
        -DHAMGR_FUZZ=OFF >/dev/null
build_units() {
        cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$backup/build.log" 2>&1
}
run_units() {
        ctest --test-dir "$build" -L unit -j"$jobs" --timeout 120 >"$backup/test.log" 2>&1
}
echo "== baseline"
if ! build_units; then
        cat "$backup/build.log" >&2
        echo "run.sh: the unmutated tree does not build" >&2
        exit 2
fi
if ! run_units; then
        cat "$backup/test.log" >&2
        echo "run.sh: unit tests fail without any mutant" >&2
        exit 2
fi

results=() n_killed=0 n_bad=0 n_run=0
for i in "${!names[@]}"; do
        name=${names[$i]} file=${files[$i]}
        [ -z "$filter" ] || [[ $name =~ $filter ]] || continue
        n_run=$((n_run + 1))
        cp "$file" "$backup/orig"
        current=$file
        if ! apply "$file" "${froms[$i]}" "${tos[$i]}"; then
                cp "$backup/orig" "$file"   # perl wrote it back unchanged; keep the mtime fresh anyway
                current=
                results+=("$(printf '%-36s %-20s %s' "$name" "$file" "STALE (text not found exactly once)")")
                n_bad=$((n_bad + 1))
                printf '%s\n' "${results[-1]}"
                continue
        fi
        if ! build_units; then
                outcome="INVALID (does not compile)"
                n_bad=$((n_bad + 1))
        elif run_units; then
                outcome="SURVIVED"
                n_bad=$((n_bad + 1))
        else
                by=$(grep -o 'unit/[a-z_0-9]* .*\(Failed\|Exception\|Timeout\)' "$backup/test.log" |
                        awk '{print $1}' | sed 's|unit/||' | sort -u | paste -sd, -)
                outcome="killed by ${by:-?}"
                n_killed=$((n_killed + 1))
        fi
        restore
        results+=("$(printf '%-36s %-20s %s' "$name" "$file" "$outcome")")
        printf '%s\n' "${results[-1]}"
done

# Leave build/mutation matching the sources again.
build_units || true

echo
echo "== mutation results"
printf '%-36s %-20s %s\n' MUTANT FILE RESULT
printf '%s\n' "${results[@]}"
echo "$n_run mutants: $n_killed killed, $((n_run - n_killed)) not ($n_bad survived, stale or invalid)"
if [ "$n_bad" -gt 0 ] && ! $report_only; then
        exit 1
fi
exit 0
