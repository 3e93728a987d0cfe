// WAGI hello in Go (GOOS=wasip1): a CGI response on stdout.
package main

import (
	"fmt"
	"os"
)

func main() {
	path := os.Getenv("PATH_INFO")
	if path == "" {
		path = "/"
	}
	if q := os.Getenv("QUERY_STRING"); q != "" {
		path += "?" + q
	}
	fmt.Printf("Content-Type: text/plain\n\nHello from Go, %s\n", path)
}
