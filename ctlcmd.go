package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/sentinel-proxy/sentinel-proxy/config"
)

// statsBase is the URL of the stats port that a command on the same host reaches: the configured listen
// address, with a wildcard host replaced by loopback.
func statsBase(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("stats.listen %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// runHealth is the container HEALTHCHECK: a GET of /healthz (or /readyz) that needs no shell or curl.
// It exits 0 when the answer is 200, 1 otherwise, and prints the answer.
func runHealth(ctx context.Context, url string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return cli.Exit(fmt.Sprintf("health: %v", err), 1)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("health: %v", err), 1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(out, "%s %s", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return cli.Exit(fmt.Sprintf("health: %s answered %s", url, resp.Status), 1)
	}
	return nil
}

// runReload asks a running proxy to re-read its configuration file, through its stats port, and prints
// what it answered: "reloaded", or every problem of a rejected file.
func runReload(ctx context.Context, base, user, password string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/-/reload", nil)
	if err != nil {
		return cli.Exit(fmt.Sprintf("reload: %v", err), 1)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("reload: %v (is the proxy running, with [stats].listen on?)", err), 1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprint(out, string(body))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnprocessableEntity:
		return cli.Exit("reload: the new configuration was rejected; the proxy keeps the running one", 2)
	default:
		return cli.Exit(fmt.Sprintf("reload: %s: %s", resp.Status, strings.TrimSpace(string(body))), 1)
	}
}

func healthCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "exit 0 if the proxy's /healthz (or /readyz with --ready) answers 200; for Docker HEALTHCHECK",
		Description: "Asks the stats port of a proxy on this host. The address comes from --url, or from\n" +
			"[stats].listen of the config file (-c or SENTINEL_PROXY_CONFIG), or is http://127.0.0.1:9000.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"SENTINEL_PROXY_CONFIG"},
				Usage: "read [stats].listen from this configuration file"},
			&cli.StringFlag{Name: "url", Usage: "base URL of the stats port, e.g. http://127.0.0.1:9000"},
			&cli.BoolFlag{Name: "ready", Usage: "check /readyz (every group has a verified master) instead of /healthz"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "give up after this long"},
		},
		Action: func(c *cli.Context) error {
			base := c.String("url")
			if base == "" {
				base = "http://127.0.0.1:9000"
				if path := c.String("config"); path != "" {
					cfg, err := loadConfig(path)
					if err != nil {
						return err
					}
					if base, err = statsBase(cfg.Stats.Listen); err != nil {
						return cli.Exit(err.Error(), 2)
					}
				}
			}
			path := "/healthz"
			if c.Bool("ready") {
				path = "/readyz"
			}
			return runHealth(c.Context, strings.TrimSuffix(base, "/")+path, c.Duration("timeout"), stdout)
		},
	}
}

func reloadCommand(stdout io.Writer, configFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make a running proxy re-read its configuration file (as SIGHUP), and print the outcome",
		Description: "Validates the file first, then POSTs to /-/reload on the proxy's stats port, with\n" +
			"[stats].listen, user and password read from the file. When the reload changes those, pass the\n" +
			"running values with --url, --user and --password, or send SIGHUP instead.\n" +
			"Exit status: 0 reloaded, 2 rejected (every problem printed; the proxy keeps running as it was), 1 other.",
		Flags: []cli.Flag{configFlag,
			&cli.StringFlag{Name: "url", Usage: "base URL of the running proxy's stats port"},
			&cli.StringFlag{Name: "user", Usage: "stats user of the running proxy"},
			&cli.StringFlag{Name: "password", Usage: "stats password of the running proxy", EnvVars: []string{"SENTINEL_PROXY_STATS_PASSWORD"}},
		},
		Action: func(c *cli.Context) error {
			cfg, err := config.Load(c.String("config"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			base := c.String("url")
			if base == "" {
				if cfg.Stats.Listen == "" {
					return cli.Exit("reload: [stats].listen is off; send SIGHUP to the proxy instead", 1)
				}
				if base, err = statsBase(cfg.Stats.Listen); err != nil {
					return cli.Exit(err.Error(), 2)
				}
			}
			user, password := cfg.Stats.User, cfg.Stats.Password
			if c.IsSet("user") {
				user = c.String("user")
			}
			if c.IsSet("password") {
				password = c.String("password")
			}
			return runReload(c.Context, strings.TrimSuffix(base, "/"), user, password, stdout)
		},
	}
}

func hashPasswordCommand(stdin io.Reader, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "hash-password",
		Usage: "read a password on standard input and print its bcrypt hash, for [stats].password_hash",
		Flags: []cli.Flag{&cli.IntFlag{Name: "cost", Value: bcrypt.DefaultCost, Usage: "bcrypt cost (4-31)"}},
		Action: func(c *cli.Context) error {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && line == "" {
				return cli.Exit("hash-password: no password on standard input", 1)
			}
			password := strings.TrimRight(line, "\r\n")
			if password == "" {
				return cli.Exit("hash-password: empty password", 1)
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(password), c.Int("cost"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("hash-password: %v", err), 1)
			}
			_, err = fmt.Fprintln(stdout, string(hash))
			return err
		},
	}
}
