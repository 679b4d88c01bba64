/*
 * check_store_diskfull.c — the store suite's diskfull part: a real full disk
 * under build/ratchet on SQLite (docs/RELIABILITY.md, "Disk full").
 *
 * Each test moves its own process into a private user and mount namespace
 * (unshare(CLONE_NEWUSER | CLONE_NEWNS), what `unshare -rm` does: no
 * privilege needed, and it works as root too) and mounts a 1 MiB tmpfs over
 * its database's directory; the ratchet processes it starts inherit the
 * mount, the host never sees it, and it vanishes with the test process.
 * Where namespaces are unavailable the tests fail, naming why: a test that
 * cannot fill a disk must not pass.
 *
 *   - midrun: rowcopy of 20,000 rows on the 1 MiB disk runs out of space
 *     mid-copy: exit 75 with one error line naming the condition and the
 *     file; PRAGMA integrity_check is ok and the committed progress agrees
 *     with the data; the tmpfs is remounted at 64 MiB (space is back) and
 *     the next start resumes and finishes with every row exactly once;
 *   - sweep: the disk filled up to 0, 16, 32, ... KiB free before rowcopy
 *     (600 rows) starts, until a run fits: the disk runs out while the
 *     database is created, the schema migrated, the lease taken, the seed
 *     or the copy written. Every start that does not finish exits 75 with
 *     the same one line; then the filler is removed, and the same checks
 *     and a resume follow. DF_DEBUG=1 prints where the starts ran out;
 *   - open: a database that cannot be created for want of space gives the
 *     same exit 75 and one line from run, migrate, daemon and worker (one
 *     open + migrate and one exit-code table: core/entry.c).
 */
#define _GNU_SOURCE /* unshare, CLONE_NEWUSER */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "harness.h"
#include "invariants.h"
#include "suites.h"

#define EVENT(name) "\"event\":\"" name "\""

static void df_write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    /* setgroups is missing on kernels before 3.19, where it is not needed. */
    if (fd < 0 && errno == ENOENT && strstr(path, "setgroups")) return;
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ssize_t n = write(fd, text, strlen(text));
    ck_assert_msg(n == (ssize_t)strlen(text), "write %s: %s", path,
                  strerror(errno));
    close(fd);
}

/* This process (the test's own, Check forks one per test) and its children
 * from now on: root of a private user namespace, in a private mount one. */
static void df_private_namespace(void) {
    uid_t uid = getuid();
    gid_t gid = getgid();
    const char *fork_mode = getenv("CK_FORK");
    ck_assert_msg(!fork_mode || strcmp(fork_mode, "no") != 0,
                  "the disk-full tests move their process into namespaces of "
                  "its own: not with CK_FORK=no");
    ck_assert_msg(unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0,
                  "unshare(CLONE_NEWUSER | CLONE_NEWNS): %s — the disk-full "
                  "tests need user namespaces (`unshare -rm true` must work; "
                  "sysctl kernel.unprivileged_userns_clone=1, "
                  "user.max_user_namespaces > 0)",
                  strerror(errno));
    char map[64];
    df_write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    df_write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    df_write_file("/proc/self/gid_map", map);
    /* Nothing mounted here propagates back to the host. */
    ck_assert_msg(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0,
                  "mount --make-rprivate /: %s", strerror(errno));
}

static void df_mount(const char *dir, const char *size) {
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
    ck_assert_msg(mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) == 0,
                  "mount -t tmpfs -o %s tmpfs %s: %s", opts, dir,
                  strerror(errno));
}

static void df_remount(const char *dir, const char *size) {
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", size);
    ck_assert_msg(mount("tmpfs", dir, "tmpfs",
                        MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) == 0,
                  "mount -o remount,%s %s: %s", opts, dir, strerror(errno));
}

/* Fill kib KiB of the disk at path; every byte must fit. */
static void df_fill(const char *path, int kib) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    static const char zero[1024];
    for (int i = 0; i < kib; i++)
        ck_assert_msg(write(fd, zero, sizeof zero) == (ssize_t)sizeof zero,
                      "filling %s, KiB %d: %s", path, i + 1, strerror(errno));
    close(fd);
}

/* The database's directory: url is sqlite:DIR/test.db (h_db_new). */
static void df_dir(const char *url, char *dir, size_t len) {
    snprintf(dir, len, "%s", url + 7);
    char *slash = strrchr(dir, '/');
    ck_assert(slash != NULL);
    *slash = '\0';
}

/* stderr holds exactly one error line, and it names the condition and the
 * database file. Returns the line (until the next call). */
static const char *df_assert_one_line(pid_t pid, const char *path) {
    const char *err = h_stderr(pid);
    int errors = 0;
    const char *line = NULL;
    for (const char *p = err; (p = strstr(p, "\"level\":\"error\"")); p++) {
        errors++;
        line = p;
    }
    ck_assert_msg(errors == 1, "%d error lines, want 1:\n%s", errors, err);
    const char *eol = strchr(line, '\n');
    size_t n = eol ? (size_t)(eol - line) : strlen(line);
    static char msg[2048];
    snprintf(msg, sizeof msg, "%.*s", (int)(n < 2047 ? n : 2047), line);
    char want[600];
    snprintf(want, sizeof want, "disk full: cannot write %s", path);
    ck_assert_msg(strstr(msg, want) != NULL, "the error line does not say '%s':\n%s",
                  want, err);
    return msg;
}

static void df_assert_integrity(const char *url) {
    char *ok = h_query_text(url, "PRAGMA integrity_check");
    ck_assert_msg(ok && !strcmp(ok, "ok"), "PRAGMA integrity_check: %s",
                  ok ? ok : "NULL");
    free(ok);
}

/* The run finished once: the copy is exact, one report row, one run row,
 * done with every item. */
static void df_assert_done_once(const char *url, const char *key, int64_t rows) {
    h_assert_rowcopy_exact(url);
    h_assert_rowcopy_report(url, key, rows);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
    char *status = h_query_text(url, "SELECT status FROM rt_run");
    ck_assert_str_eq(status, "done");
    free(status);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run"), rows);
}

START_TEST(test_diskfull_midrun) {
    const char *url = h_db_new(H_SQLITE);
    const char *path = url + 7;
    char dir[512];
    df_dir(url, dir, sizeof dir);
    df_private_namespace();
    df_mount(dir, "1m");

    const char *const *argv = ARGS("run", "rowcopy", "--key", "k", "--param",
                                   "rows=20000", "--chunk-items", "500");
    pid_t pid = h_spawn(h_bin(), url, argv, NULL);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 75);
    df_assert_one_line(pid, path);

    /* What the full disk left: intact, and the progress it saved agrees
     * with the rows it describes — in step copy, some chunks committed. */
    df_assert_integrity(url);
    ck_assert_msg(h_rowcopy_consistent(url, "k"),
                  "the disk did not run out in step copy:\n%s", h_stderr(pid));
    int64_t saved = h_query_int(url, "SELECT items FROM rt_run");
    ck_assert_msg(saved > 0 && saved < 20000, "saved items %lld", (long long)saved);

    /* Space is back: the next start resumes there, and finishes once. */
    df_remount(dir, "64m");
    pid = h_spawn(h_bin(), url, argv, NULL);
    EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
    ck_assert_msg(strstr(h_stderr(pid), EVENT("resume")) != NULL,
                  "the run did not resume:\n%s", h_stderr(pid));
    df_assert_done_once(url, "k", 20000);
    df_assert_integrity(url);
    ck_assert_int_eq(umount2(dir, MNT_DETACH), 0);
}
END_TEST

START_TEST(test_diskfull_sweep) {
    const char *url = h_db_new(H_SQLITE);
    const char *path = url + 7;
    char dir[512], filler[600];
    df_dir(url, dir, sizeof dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    df_private_namespace();
    const int64_t rows = 600;
    const char *const *argv = ARGS("run", "rowcopy", "--key", "k", "--param",
                                   "rows=600", "--chunk-items", "50");
    /* Where each start ran out of space, as its error line and then the
     * database say. */
    int at_open = 0, at_schema = 0, at_start = 0, in_seed = 0, in_copy = 0,
        in_report = 0, starts = 0, fitted_kib = -1;
    bool finished = false;
    for (int free_kib = 0; free_kib <= 1024 && !finished; free_kib += 16) {
        /* A new disk each time; the filler takes all but free_kib. */
        df_mount(dir, "1m");
        df_fill(filler, 1024 - free_kib);

        pid_t pid = h_spawn(h_bin(), url, argv, NULL);
        int rc = h_wait(pid, 60000);
        starts++;
        if (rc == 0) {
            finished = true;
            fitted_kib = free_kib;
        } else {
            EXPECT_EXIT(pid, rc, 75);
            const char *line = df_assert_one_line(pid, path);
            bool opening = strstr(line, EVENT("db_open")) != NULL;
            bool migrating = strstr(line, EVENT("migrate")) != NULL;
            ck_assert_int_eq(unlink(filler), 0); /* space is back */

            char err[512];
            inv_db *db = inv_open(url, err, sizeof err);
            ck_assert_msg(db != NULL, "%s", err);
            inv_run run;
            ck_assert_msg(inv_run_read(db, "rowcopy", "k", &run, err, sizeof err),
                          "%s", err);
            inv_close(db);
            if (opening) at_open++;
            else if (migrating) at_schema++;
            else if (!run.exists || !strcmp(run.status, "pending")) at_start++;
            else if (run.step_index == 0) in_seed++;
            else if (run.step_index == 1) in_copy++;
            else in_report++;

            df_assert_integrity(url);
            (void)h_rowcopy_consistent(url, "k"); /* asserts progress = data */
            pid = h_spawn(h_bin(), url, argv, NULL);
            EXPECT_EXIT(pid, h_wait(pid, 60000), 0);
        }
        df_assert_done_once(url, "k", rows);
        df_assert_integrity(url);
        ck_assert_int_eq(umount2(dir, MNT_DETACH), 0);
    }
    if (getenv("DF_DEBUG"))
        fprintf(stderr,
                "diskfull sweep: %d starts; ran out at open %d, migration %d, "
                "lease/claim %d, seed %d, copy %d, report %d; a run fitted "
                "in %d KiB\n",
                starts, at_open, at_schema, at_start, in_seed, in_copy,
                in_report, fitted_kib);
    ck_assert_msg(finished, "rowcopy of %lld rows never fit in 1 MiB",
                  (long long)rows);
    /* The sweep reached both ends: a database that could not be created, one
     * that could not be migrated, and a run that had committed part of its
     * copy. */
    ck_assert_msg(at_open > 0 && at_schema > 0 && in_copy > 0,
                  "ran out at open %d, migration %d, copy %d", at_open,
                  at_schema, in_copy);
}
END_TEST

START_TEST(test_diskfull_open_commands) {
    const char *url = h_db_new(H_SQLITE);
    const char *path = url + 7;
    char dir[512], filler[600];
    df_dir(url, dir, sizeof dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    df_private_namespace();
    df_mount(dir, "1m");
    df_fill(filler, 1024); /* not a byte left */
    const char *const *cmds[] = {
        ARGS("run", "rowcopy", "--key", "k"),
        ARGS("migrate"),
        ARGS("daemon", "--only", "rowcopy", "--schedule", "rowcopy=@hourly"),
        ARGS("worker"),
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        pid_t pid = h_spawn(h_bin(), url, cmds[i], NULL);
        EXPECT_EXIT(pid, h_wait(pid, 60000), 75);
        const char *line = df_assert_one_line(pid, path);
        ck_assert_msg(strstr(line, EVENT("db_open")) != NULL,
                      "'%s' did not run out while opening:\n%s", cmds[i][0],
                      line);
    }
    ck_assert_int_eq(umount2(dir, MNT_DETACH), 0);
}
END_TEST

void store_diskfull_add(Suite *s) {
    TCase *tc = tcase_create("diskfull");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_diskfull_midrun);
    tcase_add_test(tc, test_diskfull_sweep);
    tcase_add_test(tc, test_diskfull_open_commands);
    suite_add_tcase(s, tc);
}
