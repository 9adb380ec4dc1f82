#!/bin/sh
# Example hamgr notify script, keepalived-compatible:
#   $1 INSTANCE|GROUP  $2 name  $3 MASTER|BACKUP|FAULT|STOP  $4 priority
# hamgr also sets HAMGR_INSTANCE (or HAMGR_GROUP), HAMGR_STATE,
# HAMGR_PREV_STATE, HAMGR_PRIORITY and HAMGR_NODE. Scripts for one instance
# run one at a time, in order, and are killed after notify.timeout_ms.
kind=$1 name=$2 state=$3 priority=$4
logger -t hamgr-notify "$kind $name: ${HAMGR_PREV_STATE:-?} -> $state (priority $priority) on ${HAMGR_NODE:-?}"
case "$state" in
MASTER) : # e.g. start a service that must run only on the active gateway
        ;;
BACKUP|FAULT|STOP) :
        ;;
esac
exit 0
