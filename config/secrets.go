package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/crypto/bcrypt"
)

// resolveSecrets fills each password from its file or environment variable, when that is where the
// configuration says it is. At most one source per password. Errors name the key, never the secret.
func (c *Config) resolveSecrets(readFile func(string) ([]byte, error), lookupEnv func(string) (string, bool)) error {
	var errs *multierror.Error
	resolve := func(section string, password *string, file, env string) {
		n := 0
		for _, set := range []bool{*password != "", file != "", env != ""} {
			if set {
				n++
			}
		}
		if n > 1 {
			errs = multierror.Append(errs, fmt.Errorf("%s: set only one of password, password_file and password_env", section))
			return
		}
		switch {
		case file != "":
			b, err := readFile(file)
			if err != nil {
				errs = multierror.Append(errs, fmt.Errorf("%s.password_file: %w", section, err))
				return
			}
			*password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if *password == "" {
				errs = multierror.Append(errs, fmt.Errorf("%s.password_file: %s is empty", section, file))
			}
		case env != "":
			v, ok := lookupEnv(env)
			if !ok || v == "" {
				errs = multierror.Append(errs, fmt.Errorf("%s.password_env: environment variable %s is not set or empty", section, env))
				return
			}
			*password = v
		}
	}
	resolve("sentinel", &c.Sentinel.Password, c.Sentinel.PasswordFile, c.Sentinel.PasswordEnv)
	resolve("redis", &c.Redis.Password, c.Redis.PasswordFile, c.Redis.PasswordEnv)
	if c.Stats.PasswordHash != "" {
		if c.Stats.Password != "" || c.Stats.PasswordFile != "" || c.Stats.PasswordEnv != "" {
			errs = multierror.Append(errs, fmt.Errorf("stats.password_hash: set instead of password, password_file and password_env, not with them"))
		} else if _, err := bcrypt.Cost([]byte(c.Stats.PasswordHash)); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("stats.password_hash: not a bcrypt hash (want $2a$/$2b$/$2y$...): %v", err))
		}
	} else {
		resolve("stats", &c.Stats.Password, c.Stats.PasswordFile, c.Stats.PasswordEnv)
	}
	return errs.ErrorOrNil()
}
