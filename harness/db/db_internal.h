/* db_internal.h: what the registry's source files share and nobody else sees: the connection struct,
 * the metric write buffer, and helpers that turn SQLite result codes into rp_status messages naming the
 * database file. Invariants: db->sq is a connection in WAL mode on a schema of version RP_DB_SCHEMA;
 * buffered points (db->nbuf of them) are not yet in the database until rp_db_flush succeeds. */
#ifndef RP_DB_INTERNAL_H
#define RP_DB_INTERNAL_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include "db/registry.h"

/* The schema version this build writes (PRAGMA user_version). */
#define RP_DB_SCHEMA 3
/* Buffered points that trigger a flush. */
#define RP_DB_BATCH 8192
/* The flush clock ticks every RP_DB_TICK_MS; points buffered for RP_DB_FLUSH_TICKS ticks are written at
 * the next metric call or rp_db_flush_due (so no point older than about RP_DB_TICK_MS*(TICKS+1) waits). */
#define RP_DB_TICK_MS 100
#define RP_DB_FLUSH_TICKS 5

/* One buffered series: the points of one metric of one run since the last flush. */
typedef struct rp_db_series {
    int64_t run_id;
    uint32_t name;          /* index into db->names */
    size_t n, cap;
    double *steps, *vals;
} rp_db_series;

/* An interned metric name; id is its metric_names row id once known in the database (0 before). */
typedef struct rp_db_name { char *s; int64_t id; } rp_db_name;

struct rp_db {
    sqlite3 *sq;
    char *path;
    rp_db_name *names; size_t nnames, capnames;
    uint32_t *name_hash; size_t hash_cap;       /* open addressing: name index + 1, 0 empty */
    rp_db_series *series; size_t nseries, capseries;
    size_t last_series;                          /* hint: the series the previous point went to */
    size_t nbuf;                                 /* points buffered over all series */
    unsigned buf_tick;                           /* the flush clock's tick when the buffer became non-empty */
    int readonly;                                /* opened with rp_db_open_readonly: no writes, no migration */
    sqlite3_stmt *ins_chunk;                     /* prepared once, reused by every flush */
};

/* An rp_status for a failed SQLite call: "<path>: <what>: <sqlite message>", with corrupt files named so. */
rp_status rp_db_fail(rp_db *db, int rc, const char *what);
/* Run SQL text (no results) with retries on SQLITE_BUSY. */
rp_status rp_db_exec(rp_db *db, const char *sql, const char *what);
/* sqlite3_step retrying while the database is busy/locked past the busy timeout. */
int rp_db_step(sqlite3_stmt *st);
/* Bind a double so NaN and ±Inf survive: finite values as REAL, others as text 'nan', 'inf', '-inf'. */
int rp_db_bind_real(sqlite3_stmt *st, int col, double v);
/* Read back a column written by rp_db_bind_real (NULL reads as NaN). */
double rp_db_column_real(sqlite3_stmt *st, int col);
/* Append the rows of a prepared statement as a JSON array of objects (or, single_object, the first
 * row as an object; "null" when none) keyed by column name. Text columns named *_json are embedded as
 * JSON; REAL as %.17g; the texts 'nan', 'inf', '-inf' stay strings. */
rp_status rp_db_rows_json(rp_db *db, sqlite3_stmt *st, rp_buf *out, int single_object);
/* Append a double as JSON: %.17g, non-finite values as the strings "nan", "inf", "-inf". */
rp_status rp_db_json_real(rp_buf *out, double v);
/* Create or upgrade the schema to RP_DB_SCHEMA (inside an immediate transaction). */
rp_status rp_db_migrate(rp_db *db);
/* 2 -> 3: run uuids, sweep tags, the sweeps tables (db_sweep.c). */
rp_status rp_db_migrate_to_3(rp_db *db);
/* Start the flush clock (a thread that only advances a counter) in this process, once. */
void rp_db_clock_start(void);
/* The flush clock's current tick (one relaxed atomic load). */
unsigned rp_db_clock_now(void);
/* The WHERE condition (on table runs, unaliased) of a run recorded running whose process is gone. */
#define RP_DB_LOST_SQL "status = 'running' AND rp_process_gone(host, pid)"
/* The error for a run id that no row holds: "database is corrupt" when an integrity check fails (a
 * damaged page can hide rows), else RP_ERR_NOTFOUND "no run with id N". */
rp_status rp_db_run_not_found(rp_db *db, int64_t run_id);
/* Free the metric buffer and name table. */
void rp_db_metrics_free(rp_db *db);
/* Encode n doubles as little-endian IEEE-754 binary64 into out (8n bytes) / decode them back. */
void rp_db_pack_f64(const double *v, size_t n, unsigned char *out);
void rp_db_unpack_f64(const unsigned char *in, size_t n, double *v);

#endif
