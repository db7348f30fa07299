#!/usr/bin/env python3
"""Baseline for the directory benchmark: SQLite FTS5 over the same rows,
the approach of existing offline tools (unicode61 remove_diacritics, one
prefix MATCH per word, AND, LIMIT).

  fts5_baseline.py build DB ACTIVITY_TXT MAILBOX_TXT
  fts5_baseline.py search DB QUERIES_TXT       # prints p50/p90/p99 and peak RSS

Rows are read by header name, like the Rust importer; activity rows of the
same person and site are grouped the same way (consecutive rows)."""
import re
import resource
import sqlite3
import sys
import time
import unicodedata


def norm(name):
    s = unicodedata.normalize("NFD", name.lower())
    s = "".join(c for c in s if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", s).split())


def columns(header, wanted):
    names = [norm(h) for h in header.rstrip("\r\n").split("|")]
    out = {}
    for key, cands in wanted.items():
        for c in cands:
            for i, n in enumerate(names):
                if n == c or n.startswith(c + " "):
                    out[key] = i
                    break
            if key in out:
                break
    return out


ACT = {
    "nat": ["identification nationale pp"], "nom": ["nom d exercice"], "prenom": ["prenom d exercice"],
    "prof": ["libelle profession"], "sf": ["libelle savoir faire"], "site": ["identifiant technique de la structure"],
    "rs": ["raison sociale site"], "num": ["numero voie coord structure"],
    "tv": ["libelle type de voie coord structure"], "voie": ["libelle voie coord structure"],
    "cp": ["code postal coord structure"], "ville": ["libelle commune coord structure"],
    "dep": ["code departement structure"], "idpp": ["identifiant pp"],
}
BAL = {
    "nat": ["identification nationale pp"], "nom": ["nom d exercice"], "prenom": ["prenom d exercice"],
    "prof": ["libelle profession"], "sf": ["libelle savoir faire"], "rs": ["raison sociale structure bal"],
    "num": ["l4numerovoie"], "tv": ["nl4typevoie"], "voie": ["l4libellevoie"], "cp": ["code postal"],
    "ville": ["l6ligneacheminement"], "dep": ["departement"], "bal": ["adresse bal"], "idpp": ["identifiant pp"],
    "service": ["service de rattachement"],
}
FIELDS = ["nat", "nom", "prenom", "prof", "sf", "structure", "adresse", "cp", "ville", "dep", "ids", "bal"]


def rows(path, wanted):
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8-sig")
        cols = columns(header, wanted)
        for raw in f:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("cp1252", "replace")
            cells = line.rstrip("\r\n").split("|")
            yield {k: (cells[i].strip() if i < len(cells) else "") for k, i in cols.items()}


def build(db, act, bal):
    t0 = time.time()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("DROP TABLE IF EXISTS d")
    con.execute(
        "CREATE VIRTUAL TABLE d USING fts5(" + ", ".join(FIELDS) + ", tokenize='unicode61 remove_diacritics 2')"
    )
    batch = []
    prev = None
    cur = None

    def flush():
        if cur:
            batch.append(tuple(" ".join(dict.fromkeys(cur[k])) for k in FIELDS))

    n = 0
    for r in rows(act, ACT):
        n += 1
        key = (r.get("nat", ""), r.get("site", ""))
        if key != prev:
            flush()
            prev = key
            cur = {k: [] for k in FIELDS}
            cur["nat"].append(r.get("nat", ""))
            cur["nom"].append(r.get("nom", ""))
            cur["prenom"].append(r.get("prenom", ""))
            cur["prof"].append(r.get("prof", ""))
            cur["structure"].append(r.get("rs", ""))
            cur["adresse"].append(" ".join(x for x in (r.get("num"), r.get("tv"), r.get("voie")) if x))
            cur["cp"].append(r.get("cp", ""))
            cur["ville"].append(r.get("ville", ""))
            cur["dep"].append(r.get("dep", ""))
            cur["ids"].append(r.get("idpp", ""))
        cur["sf"].append(r.get("sf", ""))
        if len(batch) >= 10000:
            con.executemany("INSERT INTO d VALUES (" + ",".join("?" * len(FIELDS)) + ")", batch)
            batch.clear()
    flush()
    for r in rows(bal, BAL):
        n += 1
        batch.append((
            r.get("nat", ""), r.get("nom", ""), r.get("prenom", ""), r.get("prof", ""), r.get("sf", ""),
            " ".join(x for x in (r.get("rs"), r.get("service")) if x),
            " ".join(x for x in (r.get("num"), r.get("tv"), r.get("voie")) if x),
            r.get("cp", ""), r.get("ville", ""), r.get("dep", ""), r.get("idpp", ""), r.get("bal", ""),
        ))
        if len(batch) >= 10000:
            con.executemany("INSERT INTO d VALUES (" + ",".join("?" * len(FIELDS)) + ")", batch)
            batch.clear()
    if batch:
        con.executemany("INSERT INTO d VALUES (" + ",".join("?" * len(FIELDS)) + ")", batch)
    con.execute("INSERT INTO d(d) VALUES('optimize')")
    con.commit()
    con.close()
    print(f"fts5 build: {n} rows in {time.time() - t0:.1f} s")


def to_match(q):
    words = re.findall(r"\w+", unicodedata.normalize("NFC", q))
    return " AND ".join('"' + w.replace('"', "") + '"*' for w in words)


def search(db, queries):
    con = sqlite3.connect(db)
    times = []
    for q in open(queries, encoding="utf-8"):
        q = q.strip()
        if not q:
            continue
        m = to_match(q)
        t0 = time.perf_counter()
        if m:
            con.execute("SELECT nat, nom, prenom, bal FROM d WHERE d MATCH ? ORDER BY rank LIMIT 50", (m,)).fetchall()
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    pick = lambda p: int(times[round((len(times) - 1) * p)])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"fts5 search: {len(times)} queries: p50 {pick(0.5)} us, p90 {pick(0.9)} us, p99 {pick(0.99)} us, "
          f"max {int(times[-1])} us, peak RSS {rss // 1024} MB")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "build":
        build(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "search":
        search(*sys.argv[2:])
    else:
        sys.exit(__doc__)
