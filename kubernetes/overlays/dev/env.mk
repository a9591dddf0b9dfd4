# The development environment, for the overlays' Makefiles (see ../../base/Makefile).
SECRET_PATH := secret/rubin/usdf-consdb-dev
# The dev ConsDB's URL (also the key of the Secret the dev overlays read: common/ points CONSDB_URL at it).
CONSDB_URL_KEY := consdb-url-dev
KUBE_CONTEXT ?= usdf-consdb-dev
