// Command sentinel-proxy puts a plain Redis address in front of a Redis Sentinel deployment: clients of
// the master port always reach the verified master, clients of the replica port a healthy replica.
// This package is the command line only: it turns flags into a configuration and hands it to package
// server, which assembles and runs the proxy; ctlcmd.go holds the commands that talk to a running proxy.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/sentinel-proxy/sentinel-proxy/config"
	"github.com/sentinel-proxy/sentinel-proxy/server"
)

// version and commit are set at build time with -ldflags "-X main.version=v1.2.3 -X main.commit=<sha>";
// without commit, the VCS revision Go stamps into the build info is used (go build in a git checkout).
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful drain (up to [proxy].shutdown_timeout); restoring the default
	// action lets a second one end the process at once, as an operator pressing Ctrl-C twice expects.
	go func() { <-ctx.Done(); stop() }()
	if err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "sentinel-proxy:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is the process's status for err: the one a cli.Exit error names, or 1. A configuration that
// does not load exits 2 (loadConfig); everything server returns exits 1.
func exitCode(err error) int {
	if ec, ok := err.(cli.ExitCoder); ok {
		return ec.ExitCode()
	}
	return 1
}

// loadConfig turns a bad file into exit code 2, before anything listens.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return cfg, nil
}

func newApp(stdout, stderr io.Writer) *cli.App {
	configFlag := &cli.StringFlag{
		Name: "config", Aliases: []string{"c"}, EnvVars: []string{"SENTINEL_PROXY_CONFIG"},
		Usage: "path of the TOML configuration file", Required: true,
	}
	return &cli.App{
		Name:      "sentinel-proxy",
		Usage:     "a plain Redis address in front of Redis Sentinel: the master on one port, replicas on another",
		Version:   versionString(),
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by main, with the exit code they carry.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run the proxy; SIGHUP reloads the config, SIGTERM/SIGINT drain and stop (twice: stop now)",
				Flags: []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					cfg, err := loadConfig(c.String("config"))
					if err != nil {
						return err
					}
					log := server.NewLogger(cfg.Log, stderr)
					if os.Getenv("GOGC") == "" {
						// Forwarding allocates nothing once a session runs, so the collector only works when
						// connections come and go; a low target keeps the heap, and so memory per idle
						// connection, close to what is live. GOGC in the environment overrides it.
						debug.SetGCPercent(25)
					}
					server.LogGoRedisTo(log)
					hup := make(chan os.Signal, 1)
					signal.Notify(hup, syscall.SIGHUP)
					defer signal.Stop(hup)
					path := c.String("config")
					return server.Run(c.Context, cfg, log, server.Options{Version: versionString(), ReloadSignal: hup,
						Reload: func() (*config.Config, error) { return config.Load(path) }})
				},
			},
			{
				Name:  "check",
				Usage: "validate the config, ask every Sentinel, probe every node once, print a table; exit 1 if anything is wrong",
				Description: "Exit status: 0 all well, 1 something would keep the proxy from routing correctly\n" +
					"(an unreachable Sentinel or node, no verified master), 2 the configuration is invalid.",
				Flags: []cli.Flag{configFlag, &cli.BoolFlag{Name: "config-only",
					Usage: "only validate the configuration file (exit 2 with every problem if invalid); contact nothing"}},
				Action: func(c *cli.Context) error {
					cfg, err := loadConfig(c.String("config"))
					if err != nil {
						return err
					}
					if c.Bool("config-only") {
						_, err := fmt.Fprintf(stdout, "%s: configuration OK\n", c.String("config"))
						return err
					}
					return server.Check(c.Context, cfg, stdout)
				},
			},
			healthCommand(stdout),
			reloadCommand(stdout, configFlag),
			switchoverCommand(stdout, configFlag),
			hashPasswordCommand(os.Stdin, stdout),
			{
				Name:  "version",
				Usage: "print the version, commit and Go version",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintln(stdout, "sentinel-proxy", versionString())
					return err
				},
			},
		},
	}
}

func versionString() string {
	v, rev, modified := version, commit, false
	info, ok := debug.ReadBuildInfo()
	if ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		if modified {
			rev += "+dirty"
		}
		v += " (commit " + rev + ")"
	}
	if ok {
		v += " " + info.GoVersion
	}
	return v
}
