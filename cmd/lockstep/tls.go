package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/lockstep/lockstep/server"
)

// loadKeyPair loads a certificate and its key; the flags name the files in
// errors.
func loadKeyPair(certFile, keyFile, certFlag, keyFlag string) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, usageErr("%s and %s go together", certFlag, keyFlag)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, usageErr("%s/%s: %v", certFlag, keyFlag, err)
	}
	return c, nil
}

// loadPool reads a PEM bundle of CA certificates (nil for none given).
func loadPool(file, flagName string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr("%s: %v", flagName, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, usageErr("%s: %s holds no PEM certificate", flagName, file)
	}
	return pool, nil
}

// tlsFlags are one side's TLS files (clients' or peers'), by etcd's flag
// names (prefix "" or "peer-").
type tlsFlags struct {
	prefix                    string
	certFile, keyFile, caFile string
	clientCertAuth            bool
}

func (t *tlsFlags) flag(name string) string { return "--" + t.prefix + name }

func (t *tlsFlags) set() bool {
	return t.certFile != "" || t.keyFile != "" || t.caFile != "" || t.clientCertAuth
}

// check says whether the URLs' scheme and the TLS flags agree: https URLs
// need a certificate, and http URLs take none. what names the URL flags.
func (t *tlsFlags) check(urls []string, what string) (https bool, err error) {
	for i, u := range urls {
		if h := server.IsHTTPS(u); i == 0 {
			https = h
		} else if h != https {
			return false, usageErr("%s: %s and %s mix http and https", what, urls[0], u)
		}
	}
	if https && (t.certFile == "" || t.keyFile == "") {
		return false, usageErr("%s are https: %s and %s are required", what, t.flag("cert-file"), t.flag("key-file"))
	}
	if !https && t.set() {
		return false, usageErr("%s are http: %s, %s, %s and %s need https URLs", what, t.flag("cert-file"), t.flag("key-file"), t.flag("trusted-ca-file"), t.flag("client-cert-auth"))
	}
	if t.clientCertAuth && t.caFile == "" {
		return false, usageErr("%s needs %s", t.flag("client-cert-auth"), t.flag("trusted-ca-file"))
	}
	return https, nil
}

// configs returns the serving side's configuration and the one it uses as
// a client of the same kind of endpoint (trusting trusted-ca-file, or the
// system's roots without it, and presenting its own certificate).
func (t *tlsFlags) configs() (serve, dial *tls.Config, err error) {
	cert, err := loadKeyPair(t.certFile, t.keyFile, t.flag("cert-file"), t.flag("key-file"))
	if err != nil {
		return nil, nil, err
	}
	pool, err := loadPool(t.caFile, t.flag("trusted-ca-file"))
	if err != nil {
		return nil, nil, err
	}
	serve = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	if t.clientCertAuth {
		serve.ClientAuth = tls.RequireAndVerifyClientCert
	}
	dial = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return serve, dial, nil
}

// clientTLS is the client commands' TLS (etcdctl's --cacert, --cert,
// --key): nil for http endpoints without any of them.
func (o *clientOptions) clientTLS() (*tls.Config, error) {
	https := false
	for _, e := range o.endpointList() {
		https = https || server.IsHTTPS(e)
	}
	if !https && o.cacert == "" && o.cert == "" && o.key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.cert != "" || o.key != "" {
		c, err := loadKeyPair(o.cert, o.key, "--cert", "--key")
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	pool, err := loadPool(o.cacert, "--cacert")
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = pool
	return cfg, nil
}
