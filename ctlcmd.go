package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
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

// runSwitchover asks a running proxy for a planned switchover, through its stats port, and prints each
// step as the proxy reports it. It returns nil only when the proxy's last line says the switchover
// completed: the new master took the place of the old and answers as master through the proxy.
func runSwitchover(ctx context.Context, base, user, password string, form url.Values, timeout time.Duration, out io.Writer) error {
	// The proxy ends the switchover by its own timeout; this one only keeps a lost answer from hanging.
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/-/switchover", strings.NewReader(form.Encode()))
	if err != nil {
		return cli.Exit(fmt.Sprintf("switchover: %v", err), 1)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("switchover: %v (is the proxy running, with [stats].listen on?)", err), 1)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return cli.Exit(fmt.Sprintf("switchover: %s: %s", resp.Status, strings.TrimSpace(string(body))), 1)
	}
	lines := bufio.NewScanner(resp.Body)
	last := ""
	for lines.Scan() {
		last = lines.Text()
		fmt.Fprintln(out, last)
	}
	switch {
	case strings.HasPrefix(last, "switchover completed"):
		return nil
	case strings.HasPrefix(last, "switchover aborted"):
		return cli.Exit("switchover: aborted (the master did not move, or could not be verified; see the last line)", 1)
	}
	why := "the answer ended before the outcome"
	if err := lines.Err(); err != nil {
		why = err.Error()
	}
	return cli.Exit(fmt.Sprintf("switchover: %s: the outcome is unknown here; look for switchover_completed or "+
		"switchover_aborted in the proxy's log", why), 1)
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

// statsPortFlags are the flags of a command that asks a running proxy through its stats port.
func statsPortFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", Usage: "base URL of the running proxy's stats port"},
		&cli.StringFlag{Name: "user", Usage: "stats user of the running proxy"},
		&cli.StringFlag{Name: "password", Usage: "stats password of the running proxy", EnvVars: []string{"SENTINEL_PROXY_STATS_PASSWORD"}},
	}
}

// statsPort is where a command reaches the running proxy's stats port, and as whom.
type statsPort struct{ base, user, password string }

// statsPortOf reads the stats port from the configuration file, overridden by --url, --user and
// --password; noPort is the message when the file turns the port off and no --url is given.
func statsPortOf(c *cli.Context, noPort string) (statsPort, error) {
	cfg, err := loadConfig(c.String("config"))
	if err != nil {
		return statsPort{}, err
	}
	port := statsPort{base: c.String("url"), user: cfg.Stats.User, password: cfg.Stats.Password}
	if port.base == "" {
		if cfg.Stats.Listen == "" {
			return statsPort{}, cli.Exit(noPort, 1)
		}
		if port.base, err = statsBase(cfg.Stats.Listen); err != nil {
			return statsPort{}, cli.Exit(err.Error(), 2)
		}
	}
	port.base = strings.TrimSuffix(port.base, "/")
	if c.IsSet("user") {
		port.user = c.String("user")
	}
	if c.IsSet("password") {
		port.password = c.String("password")
	}
	return port, nil
}

func reloadCommand(stdout io.Writer, configFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make a running proxy re-read its configuration file (as SIGHUP), and print the outcome",
		Description: "Validates the file first, then POSTs to /-/reload on the proxy's stats port, with\n" +
			"[stats].listen, user and password read from the file. When the reload changes those, pass the\n" +
			"running values with --url, --user and --password, or send SIGHUP instead.\n" +
			"Exit status: 0 reloaded, 2 rejected (every problem printed; the proxy keeps running as it was), 1 other.",
		Flags: append([]cli.Flag{configFlag}, statsPortFlags()...),
		Action: func(c *cli.Context) error {
			port, err := statsPortOf(c, "reload: [stats].listen is off; send SIGHUP to the proxy instead")
			if err != nil {
				return err
			}
			return runReload(c.Context, port.base, port.user, port.password, stdout)
		},
	}
}

func switchoverCommand(stdout io.Writer, configFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "switchover",
		Usage: "move a group's master to a replica on purpose, holding writes so none is lost; print each step",
		Description: "Asks the running proxy, through POST /-/switchover on its stats port ([stats].listen, user and\n" +
			"password read from the file, or --url, --user, --password), to choose the target (--to, or the healthy\n" +
			"replica with the highest offset), steer Sentinel towards it, hold the writes, wait until the target has\n" +
			"them all, have Sentinel promote it and let the writes go to it. Whatever fails, everything is put back.\n" +
			"Exit status: 0 the new master takes writes through the proxy, 1 aborted or refused (the last line says\n" +
			"why and what was put back), 2 the configuration is invalid.",
		Flags: append([]cli.Flag{configFlag,
			&cli.StringFlag{Name: "group", Usage: "the [[masters]] name; may be left out when there is one group"},
			&cli.StringFlag{Name: "to", Usage: "the replica to promote, host:port as Sentinel lists it; default: the healthy replica with the highest offset"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "abort (and put everything back) if the switchover takes longer"},
		}, statsPortFlags()...),
		Action: func(c *cli.Context) error {
			port, err := statsPortOf(c, "switchover: [stats].listen is off: the proxy has no port to ask")
			if err != nil {
				return err
			}
			form := url.Values{"timeout": {c.Duration("timeout").String()}}
			if g := c.String("group"); g != "" {
				form.Set("group", g)
			}
			if to := c.String("to"); to != "" {
				form.Set("to", to)
			}
			return runSwitchover(c.Context, port.base, port.user, port.password, form, c.Duration("timeout"), stdout)
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
