package queue

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// What Open looks at before it writes anything, so that it can tell a queue
// it may use from one it must leave alone (ErrUnusable) and from a state it
// cannot work in yet (ErrStorage).

// companions are the suffixes of the files SQLite keeps beside a database.
func companions() []string { return []string{"-wal", "-shm", "-journal"} }

// unusable wraps ErrUnusable with what is wrong with the file.
func unusable(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnusable, fmt.Sprintf(format, a...))
}

// checkDir checks the directory the database is to live in.
func checkDir(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("directory %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("directory: %s is not a directory", dir)
	case readOnlyFS(dir):
		return fmt.Errorf("directory %s is on a filesystem mounted read-only: the queue cannot be written", dir)
	}
	return nil
}

// inspect reports whether a database exists at path and, when one does,
// checks read-only that it is a usable queue. It writes nothing to the
// database (SQLite may make the -shm file beside it).
func inspect(path string) (bool, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if wst, err := os.Stat(path + "-wal"); err == nil && wst.Size() > 0 {
			return false, unusable("the database file is missing but its WAL %s-wal is there (%d bytes): "+
				"SQLite would build a database from a WAL alone", path, wst.Size())
		}
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		return false, fmt.Errorf("%w: permission denied looking at the database file: %w", ErrStorage, err)
	case err != nil:
		return false, fmt.Errorf("%w: %w", ErrStorage, err)
	case st.IsDir():
		return false, unusable("%s is a directory, not a database file", path)
	case !st.Mode().IsRegular():
		return false, unusable("%s is not a regular file (%v)", path, st.Mode().Type())
	case st.Size() == 0:
		return false, unusable("the file is empty (0 bytes): a truncated database (a new one is never left empty)")
	}
	if err := checkHeader(path, st.Size()); err != nil {
		return false, err
	}
	return true, checkSQLite(path)
}

// checkHeader reads the SQLite header (the first 100 bytes).
func checkHeader(path string, size int64) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: permission denied reading the database file: %w", ErrStorage, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	defer f.Close()
	var h [100]byte
	n, err := io.ReadFull(f, h[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return unusable("cannot read its header: %v", err)
	}
	if n < len(h) {
		if n >= 16 && string(h[:16]) != "SQLite format 3\x00" {
			return unusable("not an SQLite database (%d bytes, no SQLite header)", size)
		}
		return unusable("truncated: %d bytes, shorter than an SQLite header", size)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return unusable("not an SQLite database (%d bytes, no SQLite header)", size)
	}
	page := int64(binary.BigEndian.Uint16(h[16:18]))
	if page == 1 {
		page = 65536
	}
	if page < 512 || page > 65536 || page&(page-1) != 0 {
		return unusable("corrupt SQLite header (page size %d)", page)
	}
	if size%page != 0 {
		return unusable("truncated: %d bytes is not a whole number of %d-byte pages", size, page)
	}
	// The page count in the header is valid when its version number matches
	// the change counter. With a WAL the file may lag the header while a
	// checkpoint runs (the WAL is then replayed): judge only without one.
	if binary.BigEndian.Uint32(h[92:96]) == binary.BigEndian.Uint32(h[24:28]) {
		pages := int64(binary.BigEndian.Uint32(h[28:32]))
		if wst, err := os.Stat(path + "-wal"); (err != nil || wst.Size() == 0) && pages*page > size {
			return unusable("truncated: the header says %d pages (%d bytes), the file holds %d bytes", pages, pages*page, size)
		}
	}
	return nil
}

// roDSN opens path read-only, without creating it.
func roDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMs))
	q.Set("mode", "ro")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// wantTables are the tables (and columns) a queue database has.
func wantTables() map[string][]string {
	return map[string][]string{
		"checkin": {"seq", "id", "queued_at", "chip_key", "event_id", "bucket", "body"},
		"history": {"chip_key", "event_id", "bucket", "id", "at"},
		"meta":    {"k", "v"},
	}
}

// checkSQLite opens the file read-only and checks its integrity and schema.
// Reading a WAL-mode database makes SQLite create -wal and -shm files
// beside it when there are none: those (empty or transient) are removed
// again, so that a refused file is left exactly as it was found.
func checkSQLite(path string) error {
	var made []string
	for _, s := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(path + s); errors.Is(err, fs.ErrNotExist) {
			made = append(made, path+s)
		}
	}
	err := checkSQLiteRO(path)
	if err == nil {
		return nil // the read-write open uses them (on a full disk it could not make them)
	}
	for _, p := range made {
		if st, serr := os.Lstat(p); serr == nil && (st.Size() == 0 || strings.HasSuffix(p, "-shm")) {
			os.Remove(p)
		}
	}
	return err
}

func checkSQLiteRO(path string) error {
	db, err := sql.Open("sqlite", roDSN(path))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	// quick_check reads every page (it skips only the index-to-table
	// cross-check): a truncated or partly overwritten file fails here rather
	// than at the first pending checkin that lies on a bad page. A queue of
	// 256 MiB takes about a second; a drained one, milliseconds.
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return classify(err, "integrity check")
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return classify(err, "integrity check")
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return classify(err, "integrity check")
	}
	rows.Close()
	if len(problems) > 0 {
		return unusable("corrupt: %s", strings.Join(problems, "; "))
	}
	rows, err = db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return classify(err, "schema")
	}
	var tables []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return classify(err, "schema")
		}
		tables = append(tables, s)
	}
	rows.Close()
	if len(tables) == 0 {
		return nil // an empty database: it becomes a queue
	}
	for name, cols := range wantTables() {
		if !slices.Contains(tables, name) {
			return unusable("a foreign SQLite database (tables %s), not a tap-kiosk queue (no table %q)", strings.Join(tables, ", "), name)
		}
		rows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", name)
		if err != nil {
			return classify(err, "schema")
		}
		var have []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return classify(err, "schema")
			}
			have = append(have, s)
		}
		rows.Close()
		for _, c := range cols {
			if !slices.Contains(have, c) {
				return unusable("a foreign SQLite database: table %s has columns %s, not %s", name, strings.Join(have, ", "), strings.Join(cols, ", "))
			}
		}
	}
	return nil
}

// classify sorts an SQLite error met while inspecting: the file's fault
// (ErrUnusable) or the state's (ErrStorage).
func classify(err error, what string) error {
	if c, ok := sqliteCode(err); ok {
		switch {
		case c&0xff == sqlite3.SQLITE_NOTADB:
			return unusable("%s: not a database: %v", what, err)
		case c&0xff == sqlite3.SQLITE_CORRUPT:
			return unusable("%s: corrupt: %v", what, err)
		case c == sqlite3.SQLITE_IOERR_SHORT_READ:
			return unusable("%s: truncated (short read): %v", what, err)
		case c == sqlite3.SQLITE_IOERR_READ:
			return unusable("%s: unreadable (I/O error reading the file): %v", what, err)
		case c&0xff == sqlite3.SQLITE_CANTOPEN, c&0xff == sqlite3.SQLITE_PERM, c&0xff == sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%w: %s: cannot open the database file or its -wal/-shm for reading (permissions, or a read-only directory): %w", ErrStorage, what, err)
		case c&0xff == sqlite3.SQLITE_FULL, c == sqlite3.SQLITE_IOERR_SHMSIZE, c == sqlite3.SQLITE_IOERR_WRITE:
			return fmt.Errorf("%w: %s: cannot make the -shm/-wal files beside the database (disk full?): %w", ErrStorage, what, err)
		}
	}
	return fmt.Errorf("%w: %s: %w", ErrStorage, what, err)
}

// openErr words an error from creating or opening the database read-write.
func openErr(path, op string, err error) error {
	if errors.Is(err, ErrUnusable) || errors.Is(err, ErrStorage) {
		return fmt.Errorf("queue: %s %s: %w", op, path, err)
	}
	if c, ok := sqliteCode(err); ok {
		switch c & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("queue: %s %s: not a usable SQLite database (corrupt or foreign file): %w: %w", op, path, ErrUnusable, err)
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return fmt.Errorf("queue: %s %s: cannot write the database file or its directory (read-only or permissions): %w: %w", op, path, ErrStorage, err)
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("queue: %s %s: disk full: %w: %w", op, path, ErrStorage, err)
		}
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("queue: %s %s: permission denied: %w: %w", op, path, ErrStorage, err)
	}
	return fmt.Errorf("queue: %s %s: %w: %w", op, path, ErrStorage, err)
}

// create makes a new queue database at path: under a temporary name first,
// schema committed and checkpointed, then renamed into place (never over an
// existing file) and the directory synced.
func create(path string) error {
	tmp := path + ".new"
	// A leftover of an interrupted create: ours, never a queue in use.
	for _, s := range append([]string{""}, companions()...) {
		if _, err := os.Lstat(tmp + s); err != nil {
			continue
		}
		if err := os.Remove(tmp + s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	db, err := sql.Open("sqlite", DSN(tmp, false))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	err = func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		var mode string
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("journal_mode is %q, not wal", mode)
		}
		if err := migrate(ctx, c); err != nil {
			return err
		}
		_, err = c.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		return err
	}()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		err = renameNoReplace(tmp, path)
	}
	if err != nil {
		for _, s := range append([]string{""}, companions()...) {
			os.Remove(tmp + s)
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SetAside moves an unusable database out of the way so that Open can
// start a fresh one: path and its -wal, -shm and -journal companions are
// renamed to path + ".unusable-" + now in UTC (queue.db.unusable-20261201T103600Z,
// queue.db.unusable-20261201T103600Z-wal, …), with "-2", "-3", … added when
// that name is taken. It never overwrites a file, and syncs the directory.
// It returns the new path of the database (what Salvage and CountPending
// take). Call it only while no outbox has the database open.
//
// The companions move first and the database last: a crash in between
// leaves the database in place, which Open then refuses again, and the
// next SetAside moves it under a name of its own, apart from its WAL (a
// salvage of it then misses what only the WAL held).
func SetAside(path string, now time.Time) (string, error) {
	st, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("queue: set aside %s: %w", path, err)
	}
	var present []string
	for _, s := range companions() {
		if _, err := os.Lstat(path + s); err == nil {
			present = append(present, s)
		}
	}
	if st == nil && len(present) == 0 {
		return "", fmt.Errorf("queue: set aside %s: nothing there: %w", path, fs.ErrNotExist)
	}
	base := path + ".unusable-" + now.UTC().Format("20060102T150405Z")
	dst := base
	for i := 2; ; i++ {
		free := true
		for _, s := range append([]string{""}, companions()...) {
			if _, err := os.Lstat(dst + s); err == nil || !errors.Is(err, fs.ErrNotExist) {
				free = false
				break
			}
		}
		if free {
			break
		}
		if i > 1000 {
			return "", fmt.Errorf("queue: set aside %s: no free name like %s", path, base)
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	for _, s := range present {
		if err := renameNoReplace(path+s, dst+s); err != nil {
			return "", fmt.Errorf("queue: set aside %s%s: %w", path, s, err)
		}
	}
	if st != nil {
		if err := renameNoReplace(path, dst); err != nil {
			return "", fmt.Errorf("queue: set aside %s: %w", path, err)
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return dst, fmt.Errorf("queue: set aside %s: sync directory: %w", path, err)
	}
	return dst, nil
}
