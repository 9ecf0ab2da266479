// An HTTP server and client with Go's net/http (nothing written for chaosreplay).
//
//	go_http server PORT                 serve GET /kv/<key> and PUT /kv/<key> from a map
//	go_http client URL COUNT TIMEOUT_MS [PAUSE_MS]
//	                                    PUT then GET COUNT keys, one request at a time,
//	                                    PAUSE_MS apart (default 100), retrying a failed
//	                                    request after 200 ms
//
// The client prints one line per request outcome, so a partition shows up as timeouts
// followed by successes once it heals, and the last line says how many requests failed.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func serve(port string) {
	var mu sync.Mutex
	store := map[string]string{}
	served := 0
	http.HandleFunc("/kv/", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/kv/")
		mu.Lock()
		defer mu.Unlock()
		served++
		switch r.Method {
		case http.MethodPut:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			store[key] = string(body)
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet:
			value, ok := store[key]
			if !ok {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, value)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "served %d keys %d\n", served, len(store))
	})
	fmt.Println("listening on", port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Println("serve:", err)
		os.Exit(1)
	}
}

// describe names a request error by its kind, without addresses or ports.
func describe(err error) string {
	text := err.Error()
	switch {
	case strings.Contains(text, "Client.Timeout") || strings.Contains(text, "deadline exceeded"):
		return "timeout"
	case strings.Contains(text, "connection refused"):
		return "refused"
	case strings.Contains(text, "connection reset"):
		return "reset"
	case strings.Contains(text, "EOF"):
		return "eof"
	}
	return text
}

func request(client *http.Client, method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(data), nil
}

func run(base string, count int, timeout, pause time.Duration) {
	client := &http.Client{Timeout: timeout}
	failures := 0
	do := func(what, method, url, body string) string {
		for {
			status, data, err := request(client, method, url, body)
			if err == nil {
				fmt.Printf("%s %d %s\n", what, status, data)
				return data
			}
			failures++
			fmt.Printf("%s failed: %s\n", what, describe(err))
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i := 0; i < count; i++ {
		key := "k" + strconv.Itoa(i)
		do("put "+key, http.MethodPut, base+"/kv/"+key, "value-"+strconv.Itoa(i*i))
		got := do("get "+key, http.MethodGet, base+"/kv/"+key, "")
		if got != "value-"+strconv.Itoa(i*i) {
			fmt.Println("wrong value for", key, got)
			os.Exit(1)
		}
		time.Sleep(pause) // paced, so faults can land between requests
	}
	do("stats", http.MethodGet, base+"/stats", "")
	fmt.Println("done, failed requests:", failures)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "server" {
		serve(os.Args[2])
		return
	}
	if (len(os.Args) == 5 || len(os.Args) == 6) && os.Args[1] == "client" {
		count, err1 := strconv.Atoi(os.Args[3])
		ms, err2 := strconv.Atoi(os.Args[4])
		pause, err3 := 100, error(nil)
		if len(os.Args) == 6 {
			pause, err3 = strconv.Atoi(os.Args[5])
		}
		if err1 == nil && err2 == nil && err3 == nil {
			run(os.Args[2], count, time.Duration(ms)*time.Millisecond,
				time.Duration(pause)*time.Millisecond)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "usage: go_http server PORT | client URL COUNT TIMEOUT_MS [PAUSE_MS]")
	os.Exit(2)
}
