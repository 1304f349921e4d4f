#!/usr/bin/env bash
# Offline WordNet 3.0 for nltk from Debian's `wordnet-base` and `wordnet-sense-index`
# packages (no nltk.download(), no internet beyond the Debian archive).
#
#   bash scripts/setup_wordnet.sh [TARGET]      (TARGET defaults to <project>/.nltk_data)
#   export NLTK_DATA=<project>/.nltk_data        (darknet_py also looks there by itself)
#
# Result: TARGET/corpora/wordnet/{data,index}.{noun,verb,adj,adv}, *.exc, cntlist.rev,
# index.sense (nltk >= 3.9 reads it when the reader starts) and lexnames. Idempotent: a second run only re-checks the files and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${1:-${NLTK_DATA_TARGET:-$ROOT/.nltk_data}}"
DEST="$TARGET/corpora/wordnet"
FILES="data.noun data.verb data.adj data.adv index.noun index.verb index.adj index.adv
       noun.exc verb.exc adj.exc adv.exc cntlist.rev index.sense"
PACKAGES="wordnet-base wordnet-sense-index"

# ImageNet wnids are WordNet 3.0 byte offsets: n02084071 must be the synset 'dog' there.
# A different WordNet version (2.1, 3.1) has other offsets and would build a wrong tree.
check_offsets() {
    python3 - "$1/data.noun" <<'EOF'
import sys
with open(sys.argv[1], "rb") as handle:
    handle.seek(2084071)
    line = handle.readline()
if not line.startswith(b"02084071 05 n 03 dog "):
    sys.exit(f"{sys.argv[1]}: offset 02084071 is not 'dog': not WordNet 3.0 ({line[:40]!r})")
EOF
}

complete() {
    local f
    for f in $FILES lexnames; do [ -s "$1/$f" ] || return 1; done
    check_offsets "$1" 2>/dev/null
}

# nltk (>= 3.9.3) refuses data folders that other accounts can write to; a permissive
# umask on a CI machine would otherwise leave the corpus unreadable to nltk.data.find.
private() {
    chmod go-w "$TARGET" "$TARGET/corpora" "$DEST" "$DEST"/*
}

if complete "$DEST"; then
    private
    echo "WordNet 3.0 already set up in $DEST"
    exit 0
fi

# The dict files: the installed packages if both are there, otherwise the .debs unpacked
# in a scratch folder (apt-get download installs nothing; apt-get update only when the
# package lists are missing, as on a fresh machine).
SRC=/usr/share/wordnet
if [ ! -s "$SRC/data.noun" ] || [ ! -s "$SRC/index.sense" ]; then
    SCRATCH="$(mktemp -d)"
    trap 'rm -rf "$SCRATCH"' EXIT
    # apt fetches as its unprivileged _apt user when run as root; let it write here.
    chown _apt "$SCRATCH" 2>/dev/null || chmod 755 "$SCRATCH"
    (cd "$SCRATCH" && { apt-get download $PACKAGES >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get download $PACKAGES >/dev/null; }; })
    for deb in "$SCRATCH"/*.deb; do dpkg -x "$deb" "$SCRATCH/x"; done
    SRC="$SCRATCH/x/usr/share/wordnet"
fi
check_offsets "$SRC"

mkdir -p "$DEST"
for f in $FILES; do cp "$SRC/$f" "$DEST/$f.tmp" && mv "$DEST/$f.tmp" "$DEST/$f"; done

# Debian ships no `lexnames` (its C library has the table compiled in), but nltk reads it to
# name each synset's lexicographer file. These are WordNet 3.0's 45 files: number, name and
# syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb), tab separated.
{
    n=0
    for entry in adj.all:3 adj.pert:3 adv.all:4 \
        noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body \
        noun.cognition noun.communication noun.event noun.feeling noun.food noun.group \
        noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant \
        noun.possession noun.process noun.quantity noun.relation noun.shape noun.state \
        noun.substance noun.time \
        verb.body:2 verb.change:2 verb.cognition:2 verb.communication:2 verb.competition:2 \
        verb.consumption:2 verb.contact:2 verb.creation:2 verb.emotion:2 verb.motion:2 \
        verb.perception:2 verb.possession:2 verb.social:2 verb.stative:2 verb.weather:2 \
        adj.ppl:3; do
        name="${entry%%:*}"
        category="${entry#*:}"
        [ "$category" = "$entry" ] && category=1   # bare names above are noun files
        printf '%02d\t%s\t%s\n' "$n" "$name" "$category"
        n=$((n + 1))
    done
} > "$DEST/lexnames.tmp"
[ "$(wc -l < "$DEST/lexnames.tmp")" -eq 45 ] || { echo "lexnames: expected 45 lines" >&2; exit 1; }
mv "$DEST/lexnames.tmp" "$DEST/lexnames"

private
complete "$DEST"
echo "WordNet 3.0 set up in $DEST (export NLTK_DATA=$TARGET)"
