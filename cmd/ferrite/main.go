// Command ferrite runs a Ferrite Edge node: an MQTT-native IoT edge gateway
// (or, with mode: hub, the cloud hub edges sync with).
//
//	ferrite --config FILE     run until SIGINT/SIGTERM, then shut down gracefully;
//	                          SIGHUP reloads the password file, the ACL file and the certificates
//	ferrite --check-config    validate the configuration (file + FERRITE_* env) and exit
//	ferrite --version         print the version and exit
//	ferrite passwd ...        manage a password file, as mosquitto_passwd (see passwd.go)
//
// Exit codes: 0 clean exit; 1 runtime failure (a port already taken, a
// shutdown that did not finish in shutdown_timeout, ...); 2 usage or
// configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ferrite-edge/ferrite"
)

// Exit codes (documented in README.md).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "passwd" {
		os.Exit(runPasswd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferrite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config `file` (default: $FERRITE_CONFIG, else built-in defaults)")
	check := fs.Bool("check-config", false, "validate the configuration, print the effective config and exit")
	version := fs.Bool("version", false, "print the version and exit")
	newActor := fs.Bool("new-actor", false, "once, after restoring the data directory from a backup: write under a new actor (docs/OPERATIONS.md)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ferrite [--config FILE] [--check-config] [--version] [--new-actor]\n")
		fmt.Fprintf(stderr, "       ferrite passwd [-b] [-c | -D] [-H sha512-pbkdf2|sha512] FILE USER [PASSWORD]\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nEvery config key can be set from the environment:\n  %s\n",
			strings.Join(ferrite.EnvVars(), "\n  "))
		fmt.Fprintf(stderr, "\nExit codes: 0 ok, 1 runtime failure, 2 usage or config error.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferrite: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return exitUsage
	}
	if *version {
		fmt.Fprintln(stdout, ferrite.Build())
		return exitOK
	}
	if *configPath == "" {
		*configPath = lookupEnv(environ, "FERRITE_CONFIG")
	}
	cfg, err := ferrite.LoadConfig(*configPath, environ)
	if err != nil {
		fmt.Fprintf(stderr, "ferrite: %v\n", err)
		return exitUsage
	}
	if *check {
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "ferrite: warning: %s\n", w)
		}
		// Secrets are not printed: the output ends up in terminals, logs
		// and bug reports.
		shown := *cfg
		if shown.Sync.Password != "" {
			shown.Sync.Password = redacted
		}
		out, err := shown.Marshal()
		if err != nil {
			fmt.Fprintf(stderr, "ferrite: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "# configuration OK (%s)\n%s", describe(*configPath), out)
		// max_keys 0 and compression_level null above mean "the preset's":
		// say what that is.
		l := cfg.Edge.Limits()
		fmt.Fprintf(stdout, "# edge.preset %q in force: max_keys %d, compression_level %d (0: off), store memory %v\n",
			l.Preset, l.MaxKeys, l.CompressionLevel, l.MemoryLimit)
		return exitOK
	}
	return serve(cfg, ferrite.Options{NewActor: *newActor}, stderr)
}

// redacted replaces a secret in the printed configuration.
const redacted = "(redacted)"

func describe(path string) string {
	if path == "" {
		return "built-in defaults"
	}
	return path
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// serve runs the node until SIGINT or SIGTERM. A second signal during the
// graceful shutdown gets the default action: the process dies at once.
func serve(cfg *ferrite.Config, opts ferrite.Options, stderr io.Writer) int {
	log := ferrite.NewLogger(cfg.Log, stderr)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	opts.Logger = log
	node, err := ferrite.NewNode(cfg, opts)
	if err != nil {
		log.Error("invalid configuration", "error", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := node.Start(ctx); err != nil {
		log.Error("start failed", "error", err)
		return exitFailure
	}
	log.Info("running; send SIGINT or SIGTERM to stop, SIGHUP to reload credentials",
		"config", describe(cfg.File()), "build", ferrite.Build().String())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-hup:
			// Password and ACL files and certificates; connected clients
			// stay (see Node.Reload). A bad file keeps the previous one.
			if err := node.Reload(ctx); err != nil {
				log.Error("reload incomplete, the previous files stay in force where they failed", "error", err)
			} else {
				log.Info("reloaded password file, ACL file and certificates")
			}
		case <-ctx.Done():
		}
	}
	stop() // from here on a second signal kills the process (default action)

	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	if err := node.Close(sctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
		return exitFailure
	}
	return exitOK
}
