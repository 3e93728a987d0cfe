// Finicky Whiskers "scoreboard" (Redis pub/sub trigger): each message on stdin becomes a row
// in MySQL table `clicks`, created if missing. MySQL dependency: $SCOREBOARD_SQL (default "db").
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"shoal.dev/guest/go/shoal"
)

const createTable = `CREATE TABLE IF NOT EXISTS clicks (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  count BIGINT NULL,
  payload VARCHAR(1024) NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)`

func main() {
	dep := os.Getenv("SCOREBOARD_SQL")
	if dep == "" {
		dep = "db"
	}
	db := shoal.SQL{Dep: dep}
	message, err := io.ReadAll(io.LimitReader(os.Stdin, 1024))
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the message:", err)
		os.Exit(1)
	}
	var event struct {
		Count *int64 `json:"count"`
	}
	_ = json.Unmarshal(message, &event) // not JSON: keep the payload, count stays NULL
	insert := func() (int64, error) {
		_, id, err := db.Execute("INSERT INTO clicks (count, payload) VALUES (?, ?)", event.Count, string(message))
		return id, err
	}
	id, err := insert()
	if e, ok := err.(*shoal.Error); ok && e.Code == shoal.Rejected {
		// Most likely the table does not exist yet: create it and try once more.
		if _, _, err = db.Execute(createTable); err == nil {
			id, err = insert()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "inserting the click:", err)
		os.Exit(1)
	}
	fmt.Printf("stored click %d\n", id)
}
