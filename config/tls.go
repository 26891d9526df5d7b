package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ListenTLS terminates TLS on a group's listeners (master and replica ports).
type ListenTLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ClientCAFile, when set, requires clients to present a certificate signed by one of its CAs
	// (mutual TLS).
	ClientCAFile string `toml:"client_ca_file"`
	MinVersion   string `toml:"min_version"` // "1.2" (default) or "1.3"
}

// Enabled reports whether the block is set at all.
func (t ListenTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != "" }

// DialTLS is TLS towards Redis nodes or Sentinels.
type DialTLS struct {
	Enabled bool `toml:"enabled"`
	// CAFile verifies the peers' certificates; empty means the system's roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are the proxy's client certificate, for peers with tls-auth-clients yes.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ServerName is the name the peers' certificates must carry; empty means the host of each address
	// (an IP address then has to be in the certificate's IP SANs).
	ServerName string `toml:"server_name"`
	// InsecureSkipVerify accepts any certificate: encryption without authentication. For tests only.
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	MinVersion         string `toml:"min_version"`
}

func tlsVersion(key, v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%s: %q is not one of \"1.2\", \"1.3\"", key, v)
}

func loadPool(key, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", key, path)
	}
	return pool, nil
}

// ServerConfig builds the listener's TLS configuration; prefix names the block in errors
// (e.g. "masters[0].tls"). Every problem is returned.
func (t ListenTLS) ServerConfig(prefix string) (*tls.Config, error) {
	var errs []error
	c := &tls.Config{}
	if v, err := tlsVersion(prefix+".min_version", t.MinVersion); err != nil {
		errs = append(errs, err)
	} else {
		c.MinVersion = v
	}
	if t.CertFile == "" || t.KeyFile == "" {
		errs = append(errs, fmt.Errorf("%s: cert_file and key_file are both required", prefix))
	} else if cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("%s.cert_file, %s.key_file: %w", prefix, prefix, err))
	} else {
		c.Certificates = []tls.Certificate{cert}
	}
	if t.ClientCAFile != "" {
		pool, err := loadPool(prefix+".client_ca_file", t.ClientCAFile)
		if err != nil {
			errs = append(errs, err)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, errors.Join(errs...)
}

// ClientConfig builds the TLS configuration towards nodes or Sentinels, or nil when TLS is off.
func (t DialTLS) ClientConfig(prefix string) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	var errs []error
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as test-only
	if v, err := tlsVersion(prefix+".min_version", t.MinVersion); err != nil {
		errs = append(errs, err)
	} else {
		c.MinVersion = v
	}
	if t.CAFile != "" {
		pool, err := loadPool(prefix+".ca_file", t.CAFile)
		if err != nil {
			errs = append(errs, err)
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s: cert_file and key_file go together", prefix))
	} else if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.cert_file, %s.key_file: %w", prefix, prefix, err))
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, errors.Join(errs...)
}
