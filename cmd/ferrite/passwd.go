package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferrite-edge/ferrite"
)

// passwdUsage mirrors mosquitto_passwd's, whose flags `ferrite passwd` takes.
const passwdUsage = `Usage: ferrite passwd [-H sha512 | -H sha512-pbkdf2] [-c | -D] FILE USER
       ferrite passwd [-H sha512 | -H sha512-pbkdf2] [-c] -b FILE USER PASSWORD
       ferrite passwd -U FILE

Manages a mosquitto-compatible password file (broker.auth.password_file).
 -b  batch mode: the password is the last argument (it shows in ps and shell history)
 -c  create a new file, replacing an existing one
 -D  delete USER
 -H  hash: sha512-pbkdf2 ($7$, the default, as mosquitto 2) or sha512 ($6$, mosquitto 1.x)
 -U  hash the plain-text passwords of FILE ("user:password" lines) in place

Without -b the password is read twice from the terminal (or two lines of
standard input). The file is replaced atomically with mode 0600; send the
running ferrite SIGHUP to load it.
`

// runPasswd is `ferrite passwd`: exit 0 on success, 1 on failure, 2 on a
// usage error.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferrite passwd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	batch := fs.Bool("b", false, "")
	create := fs.Bool("c", false, "")
	del := fs.Bool("D", false, "")
	upgrade := fs.Bool("U", false, "")
	hash := fs.String("H", ferrite.HashSHA512PBKDF2, "")
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintf(stderr, "ferrite passwd: %s\n\n", msg)
		}
		fmt.Fprint(stderr, passwdUsage)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, passwdUsage)
			return exitOK
		}
		return usage(err.Error())
	}
	rest := fs.Args()
	switch *hash {
	case ferrite.HashSHA512, ferrite.HashSHA512PBKDF2:
	default:
		return usage(fmt.Sprintf("unknown hash %q (want sha512-pbkdf2 or sha512)", *hash))
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ferrite passwd: %v\n", err)
		return exitFailure
	}
	if *upgrade {
		if *batch || *create || *del || len(rest) != 1 {
			return usage("-U takes only FILE")
		}
		if err := upgradePasswdFile(rest[0], *hash); err != nil {
			return fail(err)
		}
		return exitOK
	}
	switch {
	case *create && *del:
		return usage("-c and -D cannot be combined")
	case *del && *batch:
		return usage("-D takes no password")
	case *batch && len(rest) != 3, !*batch && len(rest) != 2:
		return usage("wrong number of arguments")
	}
	file, user := rest[0], rest[1]
	pf := ferrite.NewPasswordFile()
	if !*create {
		var err error
		if pf, err = ferrite.LoadPasswordFile(file); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fail(fmt.Errorf("%s does not exist (use -c to create it)", file))
			}
			return fail(err)
		}
	}
	if *del {
		if !pf.Delete(user) {
			fmt.Fprintf(stderr, "ferrite passwd: warning: user %s not found in %s\n", user, file)
			return exitFailure // as mosquitto_passwd
		}
	} else if err := setPassword(pf, user, *hash, *batch, rest, stdin, stderr); err != nil {
		return fail(err)
	}
	if err := pf.Save(file); err != nil {
		return fail(err)
	}
	return exitOK
}

// upgradePasswdFile hashes every plain-text password of file in place (-U).
func upgradePasswdFile(file, hash string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	pf, err := ferrite.HashPlainPasswordFile(data, hash)
	if err != nil {
		return err
	}
	return pf.Save(file)
}

// setPassword sets user's password in pf: the third argument with -b,
// else read from the terminal.
func setPassword(pf *ferrite.PasswordFile, user, hash string, batch bool, rest []string, stdin io.Reader, stderr io.Writer) error {
	password := ""
	if batch {
		password = rest[2]
	} else {
		var err error
		if password, err = promptPassword(stdin, stderr); err != nil {
			return err
		}
	}
	if password == "" {
		return errors.New("empty password")
	}
	return pf.Set(user, password, hash)
}

// promptPassword reads the password twice, without echo on a terminal.
func promptPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	r := bufio.NewReader(stdin)
	read := func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		restore := noEcho(stdin)
		line, err := r.ReadString('\n')
		restore()
		fmt.Fprintln(stderr)
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", err
	}
	again, err := read("Reenter password: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("passwords do not match")
	}
	return pw, nil
}
