// Command ferretdb runs FerretDB (MongoDB wire protocol) with its SQLite backend for Bloop's
// local development and tests. It wraps FerretDB's embeddable package because building
// FerretDB's own command from a module download lacks its generated version file.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	host := flag.String("host", env("BLOOP_MONGO_HOST", "127.0.0.1"), "listen host")
	port := flag.String("port", env("BLOOP_MONGO_PORT", "27017"), "listen port")
	dataDir := flag.String("data-dir", env("BLOOP_MONGO_DATA", "data"), "SQLite data directory")
	logLevel := flag.String("log-level", env("BLOOP_MONGO_LOG_LEVEL", "info"), "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "bad -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	dir, err := filepath.Abs(*dataDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		logger.Error("data directory", "error", err)
		os.Exit(1)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *host + ":" + *port},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + strings.TrimSuffix(dir, "/") + "/",
	})
	if err != nil {
		logger.Error("ferretdb", "error", err)
		os.Exit(1)
	}

	// SIGTERM/SIGINT cancel the context; Run then closes the listener, connections and backend.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger.Info("starting", "addr", *host+":"+*port, "data", dir)
	if err := f.Run(ctx); err != nil {
		logger.Error("ferretdb", "error", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}
