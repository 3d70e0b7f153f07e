package webdav

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/atomicfile"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/accounts"
	"github.com/tarnfs/tarn/host/vdrive"
)

// Options start a WebDAV frontend.
type Options struct {
	// Config is the profile's [[webdav]] entry.
	Config conf.WebDAV
	// Accounts are all the node's accounts; Config.Accounts narrows them.
	Accounts *accounts.Set
	// DriveFor opens an account's root.
	DriveFor func(*accounts.Account) (*vdrive.Drive, error)
	// Quota reports the quota properties (nil: not reported).
	Quota QuotaFunc
	// StateDir keeps the self-signed certificate and key
	// (webdav-selfsigned.crt and .key) when Config.TLSSelfSigned is set.
	StateDir string
	// Logger is the frontend's log (component "webdav").
	Logger hclog.Logger
	// Locks is shared by a node's frontends (nil: this frontend's own).
	Locks *Locks
	// OnRequest, when set, is called with each request's method (the
	// node's metrics count them).
	OnRequest func(method string)
}

// Server is a running WebDAV frontend.
type Server struct {
	srv     *http.Server
	ln      net.Listener
	url     string
	done    chan struct{}
	once    sync.Once
	err     error
	handler *Handler
}

// Start listens on Config.Listen and serves until Close or until ctx
// ends.
func Start(ctx context.Context, o Options) (*Server, error) {
	c := o.Config
	if o.Accounts == nil {
		return nil, errors.New("webdav: no accounts")
	}
	set, err := o.Accounts.Only(c.Accounts)
	if err != nil {
		return nil, fmt.Errorf("webdav %s accounts: %w", c.Listen, err)
	}
	logger := o.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h, err := NewHandler(HandlerConfig{Prefix: c.Prefix, Accounts: set, DriveFor: o.DriveFor,
		LockTimeout: time.Duration(c.LockTimeout), AppleDouble: c.AppleDouble, Quota: o.Quota, Logger: logger, Locks: o.Locks})
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	switch {
	case c.TLSCert != "" || c.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("webdav %s: tls_cert and tls_key: %w", c.Listen, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case c.TLSSelfSigned:
		if o.StateDir == "" {
			return nil, fmt.Errorf("webdav %s: tls_self_signed needs a state folder", c.Listen)
		}
		cert, err := SelfSigned(o.StateDir, c.Listen)
		if err != nil {
			return nil, fmt.Errorf("webdav %s: %w", c.Listen, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("webdav: listen on %s: %w", c.Listen, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		scheme = "https"
	}
	prefix := c.Prefix
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s := &Server{
		srv: &http.Server{Handler: onRequest(h, o.OnRequest), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: log.New(logger.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}), "", 0)},
		ln: ln, url: scheme + "://" + ln.Addr().String() + prefix, done: make(chan struct{}), handler: h,
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("webdav serve", "listen", c.Listen, "error", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	logger.Info("webdav listening", "url", s.url, "accounts", strings.Join(set.Names(), ","))
	if tlsCfg == nil && !isLoopback(ln.Addr()) {
		logger.Warn("webdav serves Basic logins over plain HTTP on a non-loopback address: passwords cross the network in clear; set tls_cert and tls_key or tls_self_signed", "listen", c.Listen)
	}
	return s, nil
}

// URL is where clients mount the drive ("http://127.0.0.1:8080/").
func (s *Server) URL() string { return s.url }

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler is the server's handler.
func (s *Server) Handler() *Handler { return s.handler }

// Close stops accepting, lets requests in flight finish for up to five
// seconds, then drops them.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
	})
	return s.err
}

// SelfSigned loads the self-signed pair kept in dir, making it on first
// use (ECDSA P-256, ten years, names localhost, the loopback addresses,
// this host's name and the listen host).
func SelfSigned(dir, listen string) (tls.Certificate, error) {
	certFile := filepath.Join(dir, "webdav-selfsigned.crt")
	keyFile := filepath.Join(dir, "webdav-selfsigned.key")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("self-signed pair in %s: %w (delete both files to make a new one)", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "tarn webdav"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, hn)
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if host != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// onRequest calls f with each request's method before h serves it.
func onRequest(h http.Handler, f func(method string)) http.Handler {
	if f == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f(r.Method)
		h.ServeHTTP(w, r)
	})
}
